"""The lock algorithm's decisions on a fake clock, over an in-memory store (lockcore.algorithm).

:class:`MemoryStore` is a test double of lockcore's own ``LockStore`` seam:
conditional writes on the version seen, as the seam promises. What the API
server does with them is tested against the real one
(tests/integration/lockcore/test_manager.py).
"""

from __future__ import annotations

import copy
import random
from datetime import datetime, timezone
from typing import Any

import pytest

from lockcore.algorithm import BACKOFF_CAP, BACKOFF_START, MAX_ROUNDS, Ask, LockAlgorithm, changed_members
from lockcore.errors import AlreadyLockedError, LeaseOpError, LockExpiredError
from lockcore.kube import format_micro_time
from lockcore.lease import LeaseState, lease_body
from lockcore.members import Members, MembersError
from lockcore.naming import LeaseRef, ResourceKey
from lockcore.settings import LockSettings
from lockcore.store import Seen
from tests.support.clock import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
KEY = ResourceKey("", "ConfigMap", "shop", "cfg")
REF = LeaseRef("shop", "lg.configmap.cfg")
SETTINGS = LockSettings(clock_skew_seconds=1.0)


class MemoryStore:
    """Lock Leases in a dict; every write applies only to the version it was given (else False)."""

    def __init__(self) -> None:
        self.leases: dict[LeaseRef, dict[str, Any]] = {}
        self.seen: dict[LeaseRef, Seen] = {}
        self.version = 0
        self.writes: list[str] = []
        self.refuse_writes = False  # someone else wins every race

    def put(self, lease: LeaseRef, body: dict[str, Any]) -> Seen:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"].update(resourceVersion=str(self.version), uid=f"uid-{lease.name}")
        self.leases[lease] = stored
        self.seen[lease] = Seen.from_json(stored)
        return self.seen[lease]

    def cached(self, lease: LeaseRef) -> Seen | None:
        return self.seen.get(lease)

    def forget(self, lease: LeaseRef) -> None:
        self.seen.pop(lease, None)

    def get(self, lease: LeaseRef, op: str = "getting") -> Seen | None:
        if lease not in self.leases:
            self.forget(lease)
            return None
        self.seen[lease] = Seen.from_json(self.leases[lease])
        return self.seen[lease]

    def create(self, lease: LeaseRef, body: dict[str, Any]) -> bool:
        return self._write("create", lease, lease not in self.leases, body)

    def replace(self, lease: LeaseRef, body: dict[str, Any], op: str) -> bool:
        return self._write(op, lease, self._version(lease) == body["metadata"].get("resourceVersion"), body)

    def patch_renew(self, lease: LeaseRef, txn: str, seen: Seen, now: Any, seconds: int) -> bool:
        current = self.leases.get(lease, {})
        spec = current.get("spec", {})
        applies = spec.get("holderIdentity") == txn and spec.get("renewTime") == seen.renew_time_raw
        if applies:
            current = copy.deepcopy(current)
            current["spec"].update(renewTime=format_micro_time(now), leaseDurationSeconds=seconds)
        return self._write("renew", lease, applies, current)

    def patch_members(self, lease: LeaseRef, txn: str, seen: LeaseState, members: Members) -> bool:
        raise NotImplementedError

    def delete_if_unchanged(self, lease: LeaseRef, seen: Seen) -> bool:
        self.forget(lease)
        if self._version(lease) not in (None, seen.state.resource_version):
            return False
        self.writes.append("delete")
        self.leases.pop(lease, None)
        return True

    def _version(self, lease: LeaseRef) -> str | None:
        return self.leases[lease]["metadata"]["resourceVersion"] if lease in self.leases else None

    def _write(self, what: str, lease: LeaseRef, applies: bool, body: dict[str, Any]) -> bool:
        if self.refuse_writes or not applies:
            self.forget(lease)
            return False
        self.writes.append(what)
        self.put(lease, body)
        return True


def ask(txn: str = "t1", seconds: int = 30, members: Members | None = None) -> Ask:
    return Ask(KEY, REF, txn, seconds, members, "alice")


def held_by(store: MemoryStore, clock: FakeClock, txn: str, seconds: int) -> None:
    """Put a lock of ``txn``, renewed now for ``seconds``, into the store (as another client would)."""
    store.put(REF, lease_body(namespace=REF.namespace, name=REF.name, key=KEY, txn=txn, duration_seconds=seconds,
                              now=clock.now(), principal="bob", profile=SETTINGS.profile))
    store.forget(REF)  # this client never saw it


def make(seed: int = 7) -> tuple[LockAlgorithm, MemoryStore, FakeClock]:
    store, clock = MemoryStore(), FakeClock()
    return LockAlgorithm(store, SETTINGS, clock=clock, rng=random.Random(seed)), store, clock


# -- acquire -------------------------------------------------------------------


def test_a_free_lock_is_created_in_one_write() -> None:
    algorithm, store, _ = make()
    algorithm.acquire(ask(), wait=None)
    assert store.writes == ["create"] and store.leases[REF]["spec"]["holderIdentity"] == "t1"


def test_our_own_live_lock_is_renewed_and_keeps_its_acquire_time() -> None:
    algorithm, store, clock = make()
    algorithm.acquire(ask(), wait=None)
    first = store.leases[REF]["spec"]["acquireTime"]
    clock.advance(10)
    algorithm.acquire(ask(seconds=60), wait=None)
    spec = store.leases[REF]["spec"]
    assert store.writes == ["create", "renewing"]
    assert spec["acquireTime"] == first and spec["renewTime"] == format_micro_time(clock.now())
    assert spec["leaseDurationSeconds"] == 60


def test_a_live_foreign_lock_is_refused_with_the_time_it_still_blocks() -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t2", 30)
    clock.advance(10)
    with pytest.raises(AlreadyLockedError) as refused:
        algorithm.acquire(ask(), wait=None)
    assert refused.value.holder == "t2" and refused.value.expires_in_seconds == pytest.approx(21.0)
    assert store.writes == [] and clock.slept == []


@pytest.mark.parametrize(("after", "taken"), [(30.5, False), (31.0, True)])
def test_an_expired_lock_is_taken_over_only_past_the_skew_margin(after: float, taken: bool) -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t2", 30)
    clock.advance(after)
    if not taken:
        with pytest.raises(AlreadyLockedError):
            algorithm.acquire(ask(), wait=None)
        return
    algorithm.acquire(ask(), wait=None)
    spec = store.leases[REF]["spec"]
    assert store.writes == ["taking over"] and spec["holderIdentity"] == "t1"
    assert spec["acquireTime"] == format_micro_time(clock.now()), "a takeover starts a new lock"


def test_wait_retries_with_jittered_doubling_backoff_until_the_lock_frees() -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t2", 3)  # others may take it at t=3+1 (the skew margin)
    start = clock.monotonic()
    algorithm.acquire(ask(), wait=30)
    assert store.leases[REF]["spec"]["holderIdentity"] == "t1"
    delay = BACKOFF_START
    for slept in clock.slept:
        assert delay / 2 <= slept <= delay
        delay = min(delay * 2, BACKOFF_CAP)
    waited = clock.monotonic() - start
    assert 4.0 <= waited < 4.0 + BACKOFF_CAP, "taken at the first try after the lock freed"
    assert sum(clock.slept) == pytest.approx(waited)


def test_wait_gives_up_at_its_deadline_exactly() -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t2", 600)
    start = clock.monotonic()
    with pytest.raises(AlreadyLockedError) as refused:
        algorithm.acquire(ask(), wait=5)
    assert clock.monotonic() - start == pytest.approx(5.0)
    assert max(clock.slept) <= BACKOFF_CAP and refused.value.holder == "t2"
    assert store.writes == []


@pytest.mark.parametrize("wait", [None, 0])
def test_no_wait_means_one_try(wait: float | None) -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t2", 600)
    with pytest.raises(AlreadyLockedError):
        algorithm.acquire(ask(), wait=wait)
    assert clock.slept == []


def test_members_cannot_be_added_by_re_acquiring_a_lock_taken_without() -> None:
    algorithm, store, _ = make()
    algorithm.acquire(ask(), wait=None)
    with pytest.raises(MembersError, match="whether a lock is identity-bound is chosen at its acquire"):
        algorithm.acquire(ask(members=Members.of(["user:alice"])), wait=None)
    assert store.writes == ["create"]


def test_acquire_gives_up_when_every_round_is_lost_to_others() -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t1", 30)
    store.refuse_writes = True
    with pytest.raises(AlreadyLockedError):
        algorithm.acquire(ask(), wait=None)


# -- renew and delete ----------------------------------------------------------


def test_renew_of_a_lock_we_wrote_is_one_write_without_a_read() -> None:
    algorithm, store, clock = make()
    algorithm.acquire(ask(), wait=None)
    clock.advance(20)
    algorithm.renew(REF, "t1", 30)
    assert store.writes == ["create", "renew"]
    assert store.leases[REF]["spec"]["renewTime"] == format_micro_time(clock.now())


@pytest.mark.parametrize(("holder", "age", "error"), [
    (None, 0, LockExpiredError),  # gone
    ("t2", 0, AlreadyLockedError),  # someone else's
    ("t1", 30, LockExpiredError),  # ours, but run out by the holder's clock (no skew margin)
])
def test_renew_refuses_what_is_not_our_live_lock(holder: str | None, age: float, error: type[Exception]) -> None:
    algorithm, store, clock = make()
    if holder is not None:
        held_by(store, clock, holder, 30)
        clock.advance(age)
    with pytest.raises(error):
        algorithm.renew(REF, "t1", 30)
    assert store.writes == []


def test_renew_gives_up_after_every_round_is_lost_to_others() -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t1", 30)
    store.refuse_writes = True
    with pytest.raises(LeaseOpError) as failed:
        algorithm.renew(REF, "t1", 30)
    assert failed.value.op == "renewing" and f"changed on every one of {MAX_ROUNDS} attempts" in str(failed.value.cause)


def test_delete_held_deletes_ours_and_names_another_holder() -> None:
    algorithm, store, clock = make()
    held_by(store, clock, "t2", 30)
    assert algorithm.delete_held(REF, "t1") == (None, "t2")
    assert REF in store.leases
    deleted, other = algorithm.delete_held(REF, "t2")
    assert deleted is not None and deleted.holder == "t2" and other == "" and REF not in store.leases
    assert algorithm.delete_held(REF, "t2") == (None, "")


# -- members -------------------------------------------------------------------


CHANGES = [
    # members before (None: not identity-bound), add, remove, after or the error's words
    (("user:alice",), ("user:bob", "group:sre"), (), ("group:sre", "user:alice", "user:bob")),
    (("user:alice", "user:bob"), (), ("user:bob", "user:nobody"), ("user:alice",)),
    (("user:alice", "group:sre"), ("user:bob",), ("group:sre",), ("user:alice", "user:bob")),
    (None, ("user:bob",), (), "not identity-bound"),
    (("user:alice",), (), ("user:alice",), "stays a member"),
    (("group:sre",), (), ("group:sre",), "at least one member"),  # a Lease whose principal is no member
]


@pytest.mark.parametrize(("before", "add", "remove", "after"), CHANGES)
def test_membership_changes(before: tuple[str, ...] | None, add: tuple[str, ...], remove: tuple[str, ...],
                            after: tuple[str, ...] | str) -> None:
    state = LeaseState(holder="t1", renew_time=T0, duration_seconds=60, principal="alice",
                       members=Members.of(before) if before is not None else None)
    if isinstance(after, str):
        with pytest.raises(MembersError, match=after):
            changed_members(state, Members.of(add), Members.of(remove))
    else:
        assert changed_members(state, Members.of(add), Members.of(remove)).specs() == after
