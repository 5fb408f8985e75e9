"""Run a command as a transaction: its objects locked for exactly as long as it runs.

``kubectl lock run`` (:mod:`lockcore.cli.running`) resolves the objects, then
:func:`run_locked` holds their locks with :func:`lockcore.holding.hold` (one
renewer, one loss detector), runs the command with ``LEASEGATE_TXN`` set,
forwards SIGINT/SIGTERM to it, terminates it if a lock is lost, and releases
every lock however it ends. The pure parts (which objects a manifest names,
how a command's end becomes an exit status) are separate, for tests.

Example::

    >>> outcome = run_locked(manager, keys, "t42", 30, ["kubectl", "lock", "apply", "-f", "k8s/"])  # doctest: +SKIP
    >>> outcome.status, outcome.lost
    (0, None)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from lockcore.holding import LockHolder, LockLostError, hold
from lockcore.manager import Timeout
from lockcore.naming import ResourceKey

TXN_ENV = "LEASEGATE_TXN"
EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND = 126, 127
# How long a command told to stop (its lock lost) gets before it is killed.
TERMINATE_GRACE_SECONDS = 10.0
_FORWARDED = (signal.SIGINT, signal.SIGTERM)


class ManifestError(ValueError):
    """A manifest names no object that can be locked (no kind, no apiVersion, no name).

    >>> str(ManifestError(2, "metadata.name is missing (generateName cannot be locked)"))
    'object 2 in the manifests: metadata.name is missing (generateName cannot be locked)'
    """

    def __init__(self, index: int, detail: str) -> None:
        self.index = index
        self.detail = detail
        super().__init__(f"object {index} in the manifests: {detail}")


@dataclass(frozen=True)
class Target:
    """One object a manifest names: ``type_text`` as discovery resolves it (``deployment.v1.apps``)."""

    type_text: str
    name: str
    namespace: str | None

    @property
    def target(self) -> str:
        """``TYPE/NAME`` as :meth:`lockcore.resources.Discovery.key` takes it."""
        return f"{self.type_text}/{self.name}"


def json_stream(text: str) -> list[Any]:
    """The JSON values of a stream of concatenated JSON documents (what ``kubectl ... -o json`` prints).

    >>> json_stream('{"a": 1}\\n{"b": 2}')
    [{'a': 1}, {'b': 2}]
    """
    decoder, at = json.JSONDecoder(), 0
    values: list[Any] = []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return values
        value, at = decoder.raw_decode(text, at)
        values.append(value)


def targets(objects: Iterable[Any]) -> list[Target]:
    """The objects manifests name, Lists flattened, in order.

    >>> targets([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}])
    [Target(type_text='deployment.v1.apps', name='web', namespace=None)]
    """
    found: list[Target] = []
    for index, obj in enumerate(_flatten(objects), start=1):
        if not isinstance(obj, dict):
            raise ManifestError(index, "not an object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        metadata = obj.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not isinstance(api_version, str) or not api_version or not isinstance(kind, str) or not kind:
            raise ManifestError(index, "apiVersion and kind are required")
        if not isinstance(name, str) or not name:
            raise ManifestError(index, "metadata.name is missing (generateName cannot be locked)")
        group, _, version = api_version.rpartition("/")
        type_text = ".".join(part for part in (kind.lower(), version, group) if part)
        found.append(Target(type_text, name, namespace if isinstance(namespace, str) and namespace else None))
    return found


def _flatten(objects: Iterable[Any]) -> Iterable[Any]:
    for obj in objects:
        if isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list):
            yield from _flatten(obj["items"])
        else:
            yield obj


def exit_status(returncode: int) -> int:
    """A child's end as a shell reports it: its exit code, or 128 + the signal that killed it.

    >>> exit_status(7), exit_status(-15)
    (7, 143)
    """
    return 128 - returncode if returncode < 0 else returncode


def launch_failure(command: Sequence[str], path: str | None = None) -> tuple[int, str] | None:
    """Why ``command`` cannot be started, as a shell says it (127 not found, 126 not executable), or None.

    >>> launch_failure(["no-such-command-here"], path="")
    (127, 'no-such-command-here: command not found')
    """
    program = command[0]
    if "/" in program:
        if not os.path.exists(program):
            return EXIT_NOT_FOUND, f"{program}: no such file or directory"
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            return EXIT_NOT_EXECUTABLE, f"{program}: permission denied"
        return None
    if shutil.which(program, path=path) is None:
        return EXIT_NOT_FOUND, f"{program}: command not found"
    return None


@dataclass(frozen=True)
class RunOutcome:
    """How a locked run ended: the command's exit status, and the lost lock if one was."""

    status: int
    lost: LockLostError | None = None


class CannotStartError(OSError):
    """The command could not be started; ``status`` is what a shell exits with (127 not found, else 126).

    >>> CannotStartError("helm", FileNotFoundError(2, "No such file or directory")).status
    127
    """

    def __init__(self, program: str, cause: OSError) -> None:
        self.program = program
        self.cause = cause
        self.status = EXIT_NOT_FOUND if isinstance(cause, FileNotFoundError) else EXIT_NOT_EXECUTABLE
        super().__init__(f"{program}: cannot run it: {cause.strerror or cause}")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived before the command started (the locks are given back)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class _Child:
    """The running command, shared by the main thread, the signal handlers and the loss callback.

    Outside a terminal's foreground (a CI job, a script) the command gets a
    process group of its own, and signals go to that whole group: a ``sh -c``
    pipeline's children end with it instead of writing on without the locks.
    In the foreground of a terminal it stays in run's group, where the
    terminal's own signals (Ctrl-C) reach the whole tree and an editor can
    read the terminal.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._own_group = not in_terminal_foreground()
        self._killer: threading.Timer | None = None

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with self._lock:
            try:
                self.process = subprocess.Popen(list(command), env=dict(env),
                                                process_group=0 if self._own_group else None)
            except OSError as exc:
                raise CannotStartError(command[0], exc) from exc
            if self._stopping:  # the lock was lost while it was being started
                self._terminate()
            return self.process

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the command (its whole process group when it has one)."""
        assert self.process is not None
        try:
            if self._own_group:
                os.killpg(self.process.pid, signum)
            elif self.process.poll() is None:
                self.process.send_signal(signum)
        except ProcessLookupError:
            pass  # it has ended already

    def forwards(self, signum: int) -> bool:
        """Whether run must pass ``signum`` on: not a Ctrl-C the terminal sent the command's group already."""
        return self._own_group or signum != signal.SIGINT

    def stop(self) -> None:
        """SIGTERM now, SIGKILL after the grace period: a command whose lock is gone must not go on."""
        with self._lock:
            self._stopping = True
            if self.process is not None:
                self._terminate()

    def finish(self) -> None:
        """After the command ended: if it was stopped, kill what is left of its group at once."""
        with self._lock:
            if self._killer is not None:
                self._killer.cancel()
            if self._stopping and self.process is not None:
                self.signal(signal.SIGKILL)

    def _terminate(self) -> None:
        self.signal(signal.SIGTERM)
        if self._killer is None:
            self._killer = threading.Timer(TERMINATE_GRACE_SECONDS, self.signal, args=(signal.SIGKILL,))
            self._killer.daemon = True
            self._killer.start()


def run_locked(manager: LockHolder, keys: Iterable[ResourceKey], txn: str, ttl: Timeout, command: Sequence[str], *,
               wait: float | None = None, on_held: Callable[[], None] | None = None) -> RunOutcome:
    """Hold the locks on ``keys`` while ``command`` runs with ``LEASEGATE_TXN=txn``; release however it ends.

    Raises what acquiring raises (nothing is held then), :class:`Interrupted`
    for a signal before the command started, :class:`CannotStartError`.
    ``on_held`` runs once every lock is held, before the command starts.
    Call from the main thread (it installs SIGINT/SIGTERM handlers while it runs).
    """
    child = _Child()
    previous = {signum: signal.signal(signum, _forwarder(child)) for signum in _FORWARDED}
    try:
        with hold(manager, keys, txn, ttl, wait=wait, raise_on_loss=False,
                  on_lost=lambda _loss: child.stop()) as held:
            if on_held is not None:
                on_held()
            try:
                returncode = child.start(command, {**os.environ, TXN_ENV: txn}).wait()
            finally:
                child.finish()
        return RunOutcome(exit_status(returncode), held.loss)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _forwarder(child: _Child) -> Callable[[int, FrameType | None], None]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.process is None:
            raise Interrupted(signum)  # still acquiring: give back what was taken and stop
        if child.forwards(signum):
            child.signal(signum)
    return forward


def in_terminal_foreground() -> bool:
    """Whether this process is in its terminal's foreground process group (a Ctrl-C reaches that group)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False
