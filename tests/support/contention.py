"""Lock clients for the contention and crash tests, run as separate processes.

Each :func:`contend` call is one process with its own ``LeaseManager`` and
connection pool, as independent as two hosts sharing one clock. It takes and
releases random keys from a small set for a fixed time and logs every interval
in which it *believed* it held a key, by the rule a careful caller of the raw
manager must follow: a lock written by a call that started at ``t`` is trusted
until ``t + leaseDurationSeconds`` at most (the API server stored a
``renewTime`` no earlier than ``t``), and never after ``release`` was called.
:mod:`tests.support.intervals` then looks for overlaps.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import config

from lockcore.errors import AlreadyLockedError, LeaseOpError, LockExpiredError
from lockcore.manager import LeaseManager
from lockcore.naming import LeaseRef, ResourceKey
from lockcore.settings import LockSettings
from tests.support.intervals import Hold


def key_for(namespace: str, name: str) -> ResourceKey:
    return ResourceKey(group="", kind="ConfigMap", namespace=namespace, name=name)


@dataclass(frozen=True)
class ContenderSpec:
    index: int
    kubeconfig: str
    namespace: str
    keys: tuple[str, ...]
    seconds: float
    lease_seconds: int
    skew_seconds: float
    start_at: float
    abandon_probability: float = 0.1
    seed: int = 0


@dataclass
class ContenderLog:
    index: int
    holds: list[Hold] = field(default_factory=list)
    txns: list[str] = field(default_factory=list)
    attempts: int = 0
    acquired: int = 0
    contended: int = 0
    renewed: int = 0
    released: int = 0
    abandoned: int = 0
    self_expired: int = 0
    renew_expired: int = 0
    # Renew answered "someone else holds it" while this client still trusted its lock.
    stolen: list[str] = field(default_factory=list)
    op_errors: list[str] = field(default_factory=list)


def manager_for(kubeconfig: str, settings: LockSettings, **kwargs: Any) -> LeaseManager:
    """A LeaseManager with its own ApiClient (and so its own connections)."""
    return LeaseManager(config.new_client_from_config(config_file=kubeconfig), settings, **kwargs)


def contend(spec: ContenderSpec) -> ContenderLog:
    """Acquire/renew/release random keys until ``spec.seconds`` after ``start_at``."""
    rng = random.Random(spec.seed * 1000 + spec.index)
    settings = LockSettings(lock_namespace=spec.namespace, clock_skew_seconds=spec.skew_seconds)
    manager = manager_for(spec.kubeconfig, settings, principal="admin", rng=rng)
    log = ContenderLog(index=spec.index)
    time.sleep(max(0.0, spec.start_at - time.time()))
    stop_at = spec.start_at + spec.seconds
    seq = 0
    while time.time() < stop_at:
        key_name = rng.choice(spec.keys)
        txn = f"w{spec.index}-{seq}"
        seq += 1
        log.attempts += 1
        started = time.time()
        try:
            ref = manager.acquire(key_for(spec.namespace, key_name), txn, spec.lease_seconds)
        except AlreadyLockedError:
            log.contended += 1
            time.sleep(rng.uniform(0, 0.05))
            continue
        except LeaseOpError as exc:
            log.op_errors.append(f"acquire {txn}: {exc}")
            continue
        got = time.time()
        log.acquired += 1
        log.txns.append(txn)
        trusted_until = started + spec.lease_seconds
        _hold(rng)
        if rng.random() < 0.5:
            trusted_until = _renew(manager, ref, txn, spec, log, trusted_until)
            _hold(rng)
        end = time.time()
        if end > trusted_until:
            log.self_expired += 1
        log.holds.append(Hold(key=key_name, start=got, end=min(end, trusted_until), holder=txn))
        if rng.random() < spec.abandon_probability:
            log.abandoned += 1  # walk away: others must wait for expiry, then take it over
            continue
        try:
            manager.release(ref, txn)
            log.released += 1
        except LeaseOpError as exc:
            log.op_errors.append(f"release {txn}: {exc}")
        time.sleep(rng.uniform(0, 0.02))
    manager.api_client.close()
    return log


def _hold(rng: random.Random) -> None:
    time.sleep(rng.uniform(0, 0.3))


def _renew(manager: LeaseManager, ref: LeaseRef, txn: str, spec: ContenderSpec,
           log: ContenderLog, trusted_until: float) -> float:
    started = time.time()
    if started >= trusted_until:
        return trusted_until  # already past what we may trust: a renew could only resurrect it
    try:
        manager.renew(ref, txn, spec.lease_seconds)
    except LockExpiredError:
        log.renew_expired += 1
        return trusted_until
    except AlreadyLockedError as exc:
        # Only a violation if we still trusted the lock when the renew was answered.
        if time.time() < trusted_until:
            log.stolen.append(f"{txn} on {ref}: {exc}")
        return trusted_until
    except LeaseOpError as exc:
        log.op_errors.append(f"renew {txn}: {exc}")
        return trusted_until
    log.renewed += 1
    return started + spec.lease_seconds


# -- holder crash -------------------------------------------------------------


def hold_and_wait(kubeconfig: str, namespace: str, keys: Sequence[str], txn: str,
                  lease_seconds: int, renew_every: float, ready_file: str) -> None:
    """Take every key, renew them every ``renew_every`` s, and wait to be killed.

    Writes ``ready_file`` once all are held. Runs until SIGKILLed (the test's
    crash); exits on its own after a minute so nothing outlives a failed test.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    settings = LockSettings(lock_namespace=namespace)
    manager = manager_for(kubeconfig, settings, principal="admin")
    refs = [manager.acquire(key_for(namespace, k), txn, lease_seconds) for k in keys]
    Path(ready_file).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(renew_every)
        for ref in refs:
            manager.renew(ref, txn, lease_seconds)
