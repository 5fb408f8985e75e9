"""lockcore.pipeline: which objects manifests name, how a command's end is reported, and run_locked's
promises (the command sees the txn, its status is kept, the locks are released on every path, a lost
lock ends the command, a busy lock means it never starts), against an in-memory Manager (our own
interface, not the Kubernetes API) and real child processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.errors import AlreadyLockedError, LockExpiredError
from lockcore.manager import MemberSpecs
from lockcore.naming import LeaseRef, ResourceKey
from lockcore.pipeline import (
    CannotStartError,
    ManifestError,
    Target,
    exit_status,
    json_stream,
    launch_failure,
    run_locked,
    targets,
)


@pytest.mark.parametrize(("obj", "target"), [
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}},
     Target("configmap.v1", "a", "shop")),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
     Target("deployment.v1.apps", "web", None)),
    ({"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": {"name": "w", "namespace": ""}},
     Target("widget.v1beta1.example.com", "w", None)),
])
def test_targets_name_the_type_as_discovery_resolves_it(obj: dict[str, object], target: Target) -> None:
    assert targets([obj]) == [target]


def test_lists_are_flattened_in_order() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    listed = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
        {"apiVersion": "v1", "kind": "ConfigMapList", "items": [cm]}]}
    assert [t.target for t in targets([cm, listed])] == ["configmap.v1/a", "secret.v1/s", "configmap.v1/a"]


@pytest.mark.parametrize(("obj", "detail"), [
    ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "apiVersion and kind are required"),
    ({"apiVersion": "v1", "metadata": {"name": "a"}}, "apiVersion and kind are required"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}, "metadata.name is missing"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": None}, "metadata.name is missing"),
    ("text", "not an object"),
])
def test_what_cannot_be_locked_is_a_one_line_error(obj: object, detail: str) -> None:
    ok = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}
    with pytest.raises(ManifestError) as raised:
        targets([ok, obj])
    assert raised.value.index == 2 and raised.value.detail.startswith(detail)
    assert "\n" not in str(raised.value)


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3), max_size=4),
       st.sampled_from(["", "\n", " \n\t"]))
def test_json_stream_reads_back_concatenated_documents(values: list[dict[str, object]], gap: str) -> None:
    text = gap.join(json.dumps(v, indent=2) for v in values) + gap
    assert json_stream(text) == values


@pytest.mark.parametrize(("returncode", "status"), [(0, 0), (7, 7), (-signal.SIGTERM, 143), (-signal.SIGKILL, 137),
                                                    (-signal.SIGINT, 130)])
def test_exit_status_is_the_shells(returncode: int, status: int) -> None:
    assert exit_status(returncode) == status


def test_launch_failures_are_the_shells(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    assert launch_failure([str(script)]) == (126, f"{script}: permission denied")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert launch_failure([str(script)]) is None
    assert launch_failure([str(tmp_path)]) == (126, f"{tmp_path}: permission denied")
    assert launch_failure([str(tmp_path / "absent")]) == (127, f"{tmp_path / 'absent'}: no such file or directory")
    assert launch_failure(["script"], path=str(tmp_path)) is None
    assert launch_failure(["nope"], path=str(tmp_path)) == (127, "nope: command not found")


class MemoryManager:
    """Locks in a dict; ``busy`` keys are another transaction's; ``lose`` makes renewals find the lock gone."""

    def __init__(self, busy: Iterable[str] = (), lose: bool = False) -> None:
        self.held: dict[LeaseRef, str] = {LeaseRef("ns", name): "other" for name in busy}
        self.lose = lose

    def ref_for(self, key: ResourceKey) -> LeaseRef:
        return LeaseRef(key.namespace, key.name)

    def acquire(self, key: ResourceKey, txn: str, timeout: float | timedelta, *, fence: bool = True,
                wait: float | None = None, members: MemberSpecs | None = None) -> LeaseRef:
        ref = self.ref_for(key)
        if self.held.get(ref, txn) != txn:
            raise AlreadyLockedError(ref.name, self.held[ref], namespace=ref.namespace)
        self.held[ref] = txn
        return ref

    def renew(self, lease: LeaseRef, txn: str, timeout: float | timedelta) -> None:
        if self.lose:
            raise LockExpiredError(lease.name, namespace=lease.namespace)

    def release(self, lease: LeaseRef, txn: str) -> None:
        if self.held.get(lease) == txn:
            del self.held[lease]

    def release_all(self, leases: Iterable[LeaseRef], txn: str) -> None:
        for lease in leases:
            self.release(lease, txn)

    def mine(self, txn: str) -> list[LeaseRef]:
        return [ref for ref, holder in self.held.items() if holder == txn]


KEYS = [ResourceKey("", "ConfigMap", "ns", "a"), ResourceKey("apps", "Deployment", "ns", "web")]


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def test_the_command_runs_with_the_txn_while_everything_is_held(tmp_path: Path) -> None:
    manager, seen = MemoryManager(), tmp_path / "seen"
    held_at_start: list[LeaseRef] = []
    outcome = run_locked(manager, KEYS, "t42", 30, sh(f'echo "$LEASEGATE_TXN" > {seen}; exit 7'),
                         on_held=lambda: held_at_start.extend(manager.mine("t42")))
    assert (outcome.status, outcome.lost) == (7, None)
    assert seen.read_text() == "t42\n"
    assert sorted(held_at_start) == sorted(manager.ref_for(k) for k in KEYS)
    assert manager.held == {}, "released after the command ended"


def test_a_busy_lock_means_the_command_never_starts_and_nothing_is_held(tmp_path: Path) -> None:
    manager, ran = MemoryManager(busy=["web"]), tmp_path / "ran"
    with pytest.raises(AlreadyLockedError):
        run_locked(manager, KEYS, "t42", 30, sh(f"touch {ran}"))
    assert not ran.exists()
    assert manager.mine("t42") == [] and manager.held == {LeaseRef("ns", "web"): "other"}


def ended(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (a container's init may not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_lost_lock_ends_the_commands_whole_process_group(tmp_path: Path) -> None:
    # Outside a terminal the command has a group of its own: a shell's children end with it.
    manager, pid_file = MemoryManager(lose=True), tmp_path / "pid"
    outcome = run_locked(manager, KEYS, "t42", 3, sh(f"sleep 300 & echo $! > {pid_file}; wait"))
    assert outcome.lost is not None and manager.held == {}
    assert ended(int(pid_file.read_text()))


def test_a_lost_lock_terminates_the_command_and_is_reported() -> None:
    manager = MemoryManager(lose=True)
    # Renewed every third of a 3 s lease: the first renewal finds the lock gone.
    outcome = run_locked(manager, KEYS, "t42", 3, [sys.executable, "-c", "import time; time.sleep(60)"])
    assert outcome.status == 128 + signal.SIGTERM
    assert outcome.lost is not None and isinstance(outcome.lost.cause, LockExpiredError)
    assert manager.held == {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_forwarded_and_the_locks_released(signum: int, tmp_path: Path) -> None:
    manager, ready = MemoryManager(), tmp_path / "ready"
    before = signal.getsignal(signum)
    # The child signals this process once it runs; run_locked forwards the signal to it.
    child = (f"import os, signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             f"open({str(ready)!r}, 'w').close(); os.kill({os.getpid()}, {int(signum)}); time.sleep(60)")
    outcome = run_locked(manager, KEYS, "t42", 30, [sys.executable, "-c", child])
    assert ready.exists() and outcome.status == 128 + signum
    assert manager.held == {}
    assert signal.getsignal(signum) == before, "the handlers are restored"


def test_a_command_that_cannot_start_after_all_is_the_shells_code_and_nothing_stays_held(tmp_path: Path) -> None:
    manager, plain = MemoryManager(), tmp_path / "binary"
    plain.write_bytes(b"\x7fELF-not-really")
    plain.chmod(0o755)  # executable, but no format the kernel knows: a shell says 126
    with pytest.raises(CannotStartError) as raised:
        run_locked(manager, KEYS, "t42", 30, [str(plain)])
    assert raised.value.status == 126 and manager.held == {}
    with pytest.raises(CannotStartError) as missing:
        run_locked(manager, KEYS, "t42", 30, [str(tmp_path / "absent")])
    assert missing.value.status == 127 and manager.held == {}
