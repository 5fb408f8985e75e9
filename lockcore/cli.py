"""``lockcore`` and ``kubectl lock``: take, inspect and release locks from a shell.

One implementation serves both entry points; the kubectl plugin adds helpers
that run a transaction-annotated ``apply``, ``delete`` or ``edit`` through the
real kubectl. Examples::

    lockcore acquire deployment/web -n shop --txn t42 --ttl 10m
    kubectl lock status deployment/web -n shop -o json
    kubectl lock list --txn t42
    kubectl lock apply -f web.yaml --txn t42
    kubectl lock edit deployment/web -n shop --txn t42
    kubectl lock audit -n shop --txn t42
    kubectl lock prune                      # markers no live lock stands behind (--apply removes)
    lockcore acquire cm/cfg --txn t42 --ttl 5m --no-fence   # advisory only: nothing enforces it
    kubectl lock acquire deploy/web --txn t42 --ttl 10m --member group:sre --member sa:shop:deployer
    kubectl lock members add deploy/web --txn t42 --member user:bob   # identity-bound locks only

The cluster is chosen as kubectl chooses it (``--kubeconfig``, ``--context``,
``$KUBECONFIG``, ``~/.kube/config``, else in-cluster). ``list`` and ``audit``
cover all namespaces unless ``-n`` is given. ``acquire`` warns on stderr about
locks that can still be bypassed (an unlocked owner, a kind no leasegate webhook
judges; see :mod:`lockcore.advice`).

Exit codes:
    0  success (``status`` also exits 0 when the object is not locked)
    1  an API or kubectl call failed (a lock's namespace that does not exist, too)
    2  usage error: bad arguments, unknown resource type, invalid name or ttl
    3  the lock is held by another transaction (AlreadyLockedError)
    4  the lock has expired or is gone (LockExpiredError, on ``renew``)
    5  no cluster to talk to: no kubeconfig, a missing kubeconfig file, an unknown
       ``--context``, or an API server that does not answer

Every failure is one line on stderr, ``error: ...``, as kubectl prints it;
usage errors add ``See 'kubectl lock acquire --help' for usage.``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import urllib3
from kubernetes.client.exceptions import ApiException

from lockcore.advice import Locked, acquire_warnings
from lockcore.connect import api_client_from, default_namespace, unreachable
from lockcore.editing import StampError, stamp_edit_text
from lockcore.errors import (
    AlreadyLockedError,
    ClusterConfigError,
    ClusterUnreachableError,
    LeaseOpError,
    LockError,
    LockExpiredError,
    NamespaceNotFoundError,
)
from lockcore.fence import Fence
from lockcore.holding import acquire_all
from lockcore.kube import LOCKED_LABEL
from lockcore.lease import LeaseState, format_micro_time, utcnow
from lockcore.ledger import AuditFilter, blocked_writes, parse_since
from lockcore.locate import find_lock
from lockcore.manager import LeaseManager
from lockcore.members import Members, MembersError, parse_spec
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, describe_object, validate_txn
from lockcore.prune import StaleMarker, stale_markers
from lockcore.resources import Discovery, split_target
from lockcore.settings import LockSettings, Profile, SettingsError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_LOCKED, EXIT_EXPIRED, EXIT_NO_CLUSTER = 0, 1, 2, 3, 4, 5
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_EDIT_WRAPPER = "_edit-wrapper"
_WRAPPED_EDITOR_ENV = "LEASEGATE_WRAPPED_EDITOR"


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is kubectl's two lines, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}\nSee '{self.prog} --help' for usage.\n")


def parse_duration(text: str) -> float:
    """Go-style durations as kubectl takes them: ``10m``, ``1h30m``, ``500ms``, ``45`` (seconds).

    >>> parse_duration("1h30m"), parse_duration("0.5"), parse_duration("250ms")
    (5400.0, 0.5, 0.25)
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 30s, 10m, 1h30m)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _txn(text: str) -> str:
    try:
        return validate_txn(text)
    except InvalidKeyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _member(text: str) -> str:
    try:
        parse_spec(text)
    except MembersError as exc:
        raise argparse.ArgumentTypeError(f"{exc.detail}, got {text!r}") from exc
    return text


@dataclass(frozen=True)
class _Parents:
    """The argument groups subcommands share (argparse ``parents``)."""

    common: _Parser
    txn: _Parser
    target: _Parser
    targets: _Parser
    ttl: _Parser
    members: _Parser

    @classmethod
    def build(cls) -> _Parents:
        common = _Parser(add_help=False)
        common.add_argument("--kubeconfig", help="path to the kubeconfig file")
        common.add_argument("--context", help="the kubeconfig context to use")
        common.add_argument("-n", "--namespace", help="namespace of the object (default: the context's)")
        common.add_argument("-o", "--output", choices=("human", "json"), default="human")
        common.add_argument("--lock-namespace", help="namespace of cluster-scoped objects' leases "
                            "(default: $LEASEGATE_LOCK_NAMESPACE or leasegate-system)")
        common.add_argument("--profile", choices=[p.value for p in Profile], help="lease layout")
        parents = cls(common, *(_Parser(add_help=False) for _ in range(5)))
        parents.txn.add_argument("--txn", required=True, type=_txn, help="transaction name")
        parents.target.add_argument("target", metavar="TYPE/NAME", help="e.g. deployment/web, cm/settings")
        parents.targets.add_argument("targets", metavar="TYPE/NAME", nargs="+",
                                     help="one or more objects, e.g. deployment/web cm/web-config")
        parents.ttl.add_argument("--ttl", type=parse_duration, required=True, help="lease duration, e.g. 10m")
        parents.members.add_argument("--member", action="append", default=[], type=_member, metavar="SPEC",
                                     help="user:NAME, group:NAME or sa:NAMESPACE:NAME (repeatable)")
        return parents


def build_parser(prog: str, *, plugin: bool = False) -> argparse.ArgumentParser:
    """The argument parser for ``lockcore`` (or, with ``plugin``, ``kubectl lock``)."""
    p = _Parents.build()
    # Subparsers are made with the parent's class, so every level reports errors kubectl-style.
    parser = _Parser(
        prog=prog, description="Lease-based transaction locks on Kubernetes objects.",
        epilog="exit codes: 0 ok, 1 API error, 2 usage, 3 locked by another txn, 4 expired/gone, "
               "5 no cluster (kubeconfig, context, server unreachable)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_acquire(sub, p)
    sub.add_parser("renew", parents=[p.common, p.target, p.txn, p.ttl], help="extend a lock")
    _add_lock_commands(sub, p)
    if plugin:
        _add_plugin_commands(sub, p)
    return parser


def _add_acquire(sub: argparse._SubParsersAction[_Parser], p: _Parents) -> None:
    acquire = sub.add_parser("acquire", parents=[p.common, p.targets, p.txn, p.ttl, p.members],
                             help="lock objects for a transaction (all or nothing); with --member or "
                                  "--members-only identity-bound: only members (you and those named) may write them")
    acquire.add_argument("--members-only", action="store_true",
                         help="identity-bound with you as the only member unless --member names more")
    acquire.add_argument("--wait", type=parse_duration, help="keep trying this long (e.g. 30s)")
    acquire.add_argument("--no-fence", action="store_true",
                         help="take an advisory Lease only: the object is not marked leasegate.io/locked, so the "
                              "webhook is never called for its updates and nothing enforces the lock")
    acquire.add_argument("--webhook-configuration", action="append", default=[], metavar="NAME",
                         help="ValidatingWebhookConfiguration to check the locks are enforced by (repeatable; "
                              "default: those labelled app.kubernetes.io/managed-by=leasegate)")


def _add_lock_commands(sub: argparse._SubParsersAction[_Parser], p: _Parents) -> None:
    """Everything but acquire that works on locks themselves."""
    sub.add_parser("release", parents=[p.common, p.targets, p.txn],
                   help="release locks (no-op for those not held by the txn)")
    sub.add_parser("status", parents=[p.common, p.target], help="show who holds an object's lock")
    listing = sub.add_parser("list", parents=[p.common], help="list locks (all namespaces unless -n)")
    listing.add_argument("--txn", type=_txn, help="only this transaction's locks")
    sub.add_parser("force-release", parents=[p.common, p.target], help="delete a lock whoever holds it")
    prune = sub.add_parser("prune", parents=[p.common],
                           help="list objects marked leasegate.io/locked that no live lock stands behind "
                                "(all namespaces unless -n); --apply removes those markers")
    prune.add_argument("--apply", action="store_true", help="remove the stale markers (default: only list them)")
    members = sub.add_parser("members", help="add or remove members of an identity-bound lock (members only)")
    change = members.add_subparsers(dest="change", required=True, metavar="add|remove")
    for verb in ("add", "remove"):
        change.add_parser(verb, parents=[p.common, p.target, p.txn, p.members],
                          help=f"{verb} members (conditional on the Lease read)")
    audit = sub.add_parser("audit", parents=[p.common],
                           help="writes blocked by locks: the ledger (OpenReports), or Events where it has none")
    audit.add_argument("target", nargs="?", help="only writes of this object (TYPE/NAME)")
    audit.add_argument("--txn", type=_txn, help="only writes blocked by, or declaring, this txn")
    audit.add_argument("--user", help="only writes by this user")
    audit.add_argument("--since", help="only writes last seen within this long (e.g. 7d, 1h, 30m)")


def _add_plugin_commands(sub: argparse._SubParsersAction[_Parser], p: _Parents) -> None:
    """``kubectl lock`` only: helpers that run the real kubectl with the txn annotation."""
    apply = sub.add_parser("apply", parents=[p.common, p.txn], help="kubectl apply, every object annotated with the txn")
    apply.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    sub.add_parser("delete", parents=[p.common, p.target, p.txn], help="stamp the txn annotation, then kubectl delete")
    sub.add_parser("edit", parents=[p.common, p.target, p.txn],
                   help="kubectl edit (YAML, or JSON with -o json); opens with the txn annotation set")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lockcore``."""
    return _run("lockcore", list(sys.argv[1:] if argv is None else argv), plugin=False)


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kubectl-lock`` (``kubectl lock ...``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [_EDIT_WRAPPER]:
        return _edit_wrapper(args[1:])
    return _run("kubectl lock", args, plugin=True)


def _run(prog: str, argv: list[str], *, plugin: bool) -> int:
    parser = build_parser(prog, plugin=plugin)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    ctx: _Context | None = None
    try:
        ctx = _Context(args, prog)
        return _COMMANDS[args.command](ctx)
    except _HANDLED as exc:
        error = _explain(exc, ctx)
        print(f"error: {_message(error)}", file=sys.stderr)
        return next(code for kinds, code in _EXIT_CODES if isinstance(error, kinds))


# First match wins: the specific lock errors before LockError, their base.
_EXIT_CODES: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    ((AlreadyLockedError,), EXIT_LOCKED),
    ((LockExpiredError,), EXIT_EXPIRED),
    ((ClusterConfigError, ClusterUnreachableError), EXIT_NO_CLUSTER),
    ((InvalidKeyError, SettingsError, UsageError, ValueError), EXIT_USAGE),
    ((LockError, ApiException, OSError, subprocess.CalledProcessError, urllib3.exceptions.HTTPError),
     EXIT_ERROR),
)
_HANDLED = tuple(kind for kinds, _code in _EXIT_CODES for kind in kinds)


def _explain(exc: BaseException, ctx: _Context | None) -> BaseException:
    """The error the user should see: what a low-level failure means for them."""
    server = ctx.server() if ctx is not None else ""
    gone = unreachable(exc, server) if server else None
    if gone is not None:
        return gone
    if isinstance(exc, LeaseOpError) and isinstance(exc.cause, ApiException) and exc.status == 403 \
            and "message" in (exc.cause.body or ""):
        return exc.cause  # the webhook's (or RBAC's) own refusal says why and what to do
    if isinstance(exc, LeaseOpError) and exc.op == "creating" and exc.status == 404:
        # A Lease can be missing only as an object; a 404 on create means its namespace is.
        missing = NamespaceNotFoundError(exc.namespace)
        missing.__cause__ = exc
        return missing
    return exc


def _message(exc: BaseException) -> str:
    """One line: an API error as the server's own message (kubectl's), not the raw HTTP dump."""
    if not isinstance(exc, ApiException):
        return str(exc)
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    text = status.get("message") if isinstance(status, dict) else None
    return f"{text} ({exc.reason})" if text and text != exc.reason else f"{exc.reason} (HTTP {exc.status})"


class _Context:
    """What every command needs, built lazily from the parsed arguments."""

    def __init__(self, args: argparse.Namespace, prog: str) -> None:
        self.args = args
        self.prog = prog
        self.settings = LockSettings.from_env().with_overrides(
            lock_namespace=args.lock_namespace,
            profile=Profile(args.profile) if args.profile else None,
        )
        self._api: Any = None
        self._discovery: Discovery | None = None

    def server(self) -> str:
        """The API server's URL, once a client exists ("" before)."""
        return str(self._api.configuration.host) if self._api is not None else ""

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = api_client_from(self.args.kubeconfig, self.args.context)
        return self._api

    @property
    def discovery(self) -> Discovery:
        """One discovery per invocation, shared with the manager's fence (each type asked once)."""
        if self._discovery is None:
            self._discovery = Discovery(self.api)
        return self._discovery

    def manager(self) -> LeaseManager:
        return LeaseManager(self.api, self.settings, discovery=self.discovery)

    def namespace(self) -> str:
        return str(self.args.namespace or default_namespace(self.args.kubeconfig, self.args.context))

    def key(self) -> ResourceKey:
        return self.discovery.key(self.args.target, self.namespace())

    def keys(self) -> list[ResourceKey]:
        """The objects named on the command line (several for acquire/release)."""
        return [item.key for item in self.resolved()]

    def resolved(self) -> list[Locked]:
        """The objects named on the command line with their types (discovery is asked once per type)."""
        discovery = self.discovery
        return [Locked(discovery.key(target, self.namespace()), discovery.resolve(split_target(target)[0]))
                for target in self.args.targets]

    def target(self) -> tuple[ResourceKey, LeaseManager, LeaseRef]:
        """The object named on the command line, the manager, and its lock's Lease."""
        key = self.key()
        manager = self.manager()
        return key, manager, manager.ref_for(key)

    def flags(self, *names: str) -> list[str]:
        """``--name=value`` for each of these options the user gave, to pass them on."""
        given = [(name, getattr(self.args, name.replace("-", "_"), None)) for name in names]
        return [f"--{name}={value}" for name, value in given if value]

    def emit(self, data: Any, human: str) -> None:
        print(json.dumps(data, indent=2, sort_keys=True) if self.args.output == "json" else human)

    def kubectl(self, *args: str, input: str | None = None,
                env: dict[str, str] | None = None, capture: bool = True) -> str:
        """Run the real kubectl with this invocation's cluster flags."""
        binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
        if not binary:
            raise UsageError("kubectl not found on PATH (or set $KUBECTL)")
        result = subprocess.run([binary, *self.flags("kubeconfig", "context", "namespace"), *args], input=input, text=True,
                                capture_output=capture, env=dict(os.environ, **(env or {})))
        if result.returncode != 0:
            if capture:
                sys.stderr.write(result.stderr)
            raise subprocess.CalledProcessError(result.returncode, ["kubectl", *args])
        return result.stdout or ""


def lock_json(state: LeaseState, now: datetime, skew: float) -> dict[str, Any]:
    """A lock as JSON (``status`` and ``list`` output)."""
    expiry = state.expires_at()
    return {
        "lease": {"namespace": state.namespace, "name": state.name},
        "txn": state.holder,
        "principal": state.principal,
        "resource": state.resource.describe() if state.resource else "",
        "renewTime": format_micro_time(state.renew_time) if state.renew_time else None,
        "leaseDurationSeconds": state.duration_seconds,
        "expiresAt": format_micro_time(expiry) if expiry else None,
        "secondsLeft": round(state.seconds_left(now), 1),
        "live": state.is_live(now, skew),
        "members": list(state.members.specs()) if state.members is not None else None,
    }


def _members_text(state: LeaseState) -> str:
    """An identity-bound lock's members as ``status`` and ``list`` print them; "-" when not bound."""
    if state.members is None:
        return "-"
    return ",".join(state.members.specs()) or "(unreadable: nobody)"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _lease_json(ref: LeaseRef) -> dict[str, str]:
    return {"namespace": ref.namespace, "name": ref.name}


def _locks_json(manager: LeaseManager, keys: list[ResourceKey]) -> list[dict[str, Any]]:
    return [{"lease": _lease_json(manager.ref_for(key)), "resource": key.describe()} for key in keys]


def _cmd_acquire(ctx: _Context) -> int:
    items, manager = ctx.resolved(), ctx.manager()
    keys = [item.key for item in items]
    bound = ctx.args.member or ctx.args.members_only
    acquire_all(manager, keys, ctx.args.txn, ctx.args.ttl, wait=ctx.args.wait, fence=not ctx.args.no_fence,
                members=ctx.args.member if bound else None)
    members = Members.of(ctx.args.member).with_user(manager.principal()).specs() if bound else None
    only = f", members {', '.join(members)}" if members else ""
    lines = [f"locked {key.describe()} for transaction {ctx.args.txn} (lease {manager.ref_for(key)}{only})"
             for key in keys]
    ctx.emit({"locks": _locks_json(manager, keys), "txn": ctx.args.txn, "ttlSeconds": ctx.args.ttl,
              "members": list(members) if members else None}, "\n".join(lines))
    # Checked once the locks are held, so owners locked by this same command count as locked.
    for warning in acquire_warnings(ctx.api, manager, items, retry_hint=_acquire_hint(ctx),
                                    configurations=ctx.args.webhook_configuration):
        print(f"Warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _acquire_hint(ctx: _Context) -> str:
    """The command that locks one more object (``{target}``) the way this one locked these."""
    # Whole seconds: the Lease holds them (fractions round up), and `:g` could print 1e+06.
    flags = ctx.flags("kubeconfig", "context", "lock-namespace", "profile")
    flags += [f"--member={m}" for m in ctx.args.member] + ["--members-only"] * ctx.args.members_only
    return " ".join([ctx.prog, "acquire", "{target}", *flags, "--txn", ctx.args.txn,
                     "--ttl", f"{math.ceil(ctx.args.ttl)}s"])


def _cmd_renew(ctx: _Context) -> int:
    key, manager, ref = ctx.target()
    manager.renew(ref, ctx.args.txn, ctx.args.ttl)
    ctx.emit({"lease": _lease_json(ref), "txn": ctx.args.txn,
              "ttlSeconds": ctx.args.ttl}, f"renewed {key.describe()} for {ctx.args.txn}")
    return EXIT_OK


def _cmd_release(ctx: _Context) -> int:
    keys, manager = ctx.keys(), ctx.manager()
    manager.release_all([manager.ref_for(key) for key in keys], ctx.args.txn)
    ctx.emit({"locks": _locks_json(manager, keys), "released": True},
             "\n".join(f"released {key.describe()} (if {ctx.args.txn} held it)" for key in keys))
    return EXIT_OK


def _cmd_force_release(ctx: _Context) -> int:
    key, manager, ref = ctx.target()
    deleted = manager.force_release(ref)
    ctx.emit({"lease": _lease_json(ref), "deleted": deleted},
             f"force-released {key.describe()}" if deleted else f"{key.describe()} was not locked")
    return EXIT_OK


def _cmd_status(ctx: _Context) -> int:
    key, manager, _ = ctx.target()
    ref, state = find_lock(manager, key)
    if state is None:
        ctx.emit({"lease": _lease_json(ref), "locked": False},
                 f"{key.describe()} is not locked")
        return EXIT_OK
    data = lock_json(state, utcnow(), ctx.settings.clock_skew_seconds)
    data["locked"] = data["live"]
    verdict = "locked" if data["live"] else "not locked (expired lease)"
    bound = f", members {_members_text(state)}" if state.members is not None else ""
    ctx.emit(data, f"{key.describe()} is {verdict} by transaction {state.holder} "
                   f"(principal {state.principal or '?'}{bound}, lease {ref}, "
                   f"{data['secondsLeft']:.0f}s left)")
    return EXIT_OK


def _cmd_members(ctx: _Context) -> int:
    if not ctx.args.member:
        raise UsageError(f"members {ctx.args.change} needs at least one --member")
    key, manager, ref = ctx.target()
    members = manager.change_members(ref, ctx.args.txn, **{ctx.args.change: ctx.args.member})
    ctx.emit({"lease": _lease_json(ref), "txn": ctx.args.txn, "members": list(members.specs())},
             f"members of the lock on {key.describe()} (transaction {ctx.args.txn}): {', '.join(members.specs())}")
    return EXIT_OK


def _cmd_list(ctx: _Context) -> int:
    states = ctx.manager().list_locks(ctx.args.txn, namespace=ctx.args.namespace)
    now = utcnow()
    items = [lock_json(s, now, ctx.settings.clock_skew_seconds) for s in states]
    rows = [["NAMESPACE", "LEASE", "TXN", "PRINCIPAL", "MEMBERS", "RESOURCE", "LEFT"]] + [
        [i["lease"]["namespace"], i["lease"]["name"], i["txn"], i["principal"], _members_text(s), i["resource"],
         f"{i['secondsLeft']:.0f}s" if i["live"] else "expired"] for s, i in zip(states, items)
    ]
    ctx.emit({"items": items}, _table(rows) if items else "no locks")
    return EXIT_OK


def _cmd_audit(ctx: _Context) -> int:
    try:
        since = utcnow() - parse_since(ctx.args.since) if ctx.args.since is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    obj = ctx.key() if ctx.args.target else None
    wanted = AuditFilter(since=since, txn=ctx.args.txn, user=ctx.args.user, obj=obj)
    scope = (obj.namespace or None) if obj else ctx.args.namespace
    items = [entry.as_json() for entry in blocked_writes(ctx.api, scope, wanted)]
    rows = [["LAST SEEN", "FIRST SEEN", "USER", "OPERATION", "OBJECT", "HOLDER", "DECLARED", "MODE", "REASON",
             "COUNT"]] + [
        [i["last_seen"], i["first_seen"] or "-", i["user"], i["operation"],
         describe_object(i["group"], i["kind"], i["namespace"], i["name"]),
         i["holder"], i["declared_txn"] or "-", i["mode"], i["reason"], str(i["count"])] for i in items
    ]
    ctx.emit({"items": items}, _table(rows) if items else "no blocked writes")
    return EXIT_OK


def _cmd_apply(ctx: _Context) -> int:
    stamp = f"{ctx.settings.txn_annotation}={ctx.args.txn}"
    source = sys.stdin.read() if ctx.args.filename == "-" else None
    file_arg = "-" if source is not None else ctx.args.filename
    # kubectl annotates locally (any manifest kubectl reads, YAML or JSON, lists included).
    annotated = ctx.kubectl("annotate", "--local", "--overwrite", "-o", "json", "-f", file_arg,
                            stamp, input=source)
    # The transaction's objects keep (or, created, get) its marker: a locked name must be created
    # marked, or its later writes would not reach the webhook. Release removes it.
    annotated = ctx.kubectl("label", "--local", "--overwrite", "-o", "json", "-f", "-",
                            f"{LOCKED_LABEL}={ctx.args.txn}", input=annotated)
    output = ["-o", "json"] if ctx.args.output == "json" else []
    sys.stdout.write(ctx.kubectl("apply", "-f", "-", *output, input=annotated))
    return EXIT_OK


def _cmd_delete(ctx: _Context) -> int:
    patch = json.dumps({"metadata": {"annotations": {ctx.settings.txn_annotation: ctx.args.txn}}})
    ctx.kubectl("patch", ctx.args.target, "--type", "merge", "-p", patch)
    sys.stdout.write(ctx.kubectl("delete", ctx.args.target))
    return EXIT_OK


def _cmd_edit(ctx: _Context) -> int:
    original = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    wrapper = f"{sys.executable} -m lockcore.cli {_EDIT_WRAPPER} {ctx.settings.txn_annotation} {ctx.args.txn}"
    # kubectl edit's -o is both the format edited and what it prints afterwards; YAML is its
    # default and leaves the output "configmap/x edited". -o json edits and prints JSON.
    edit_format = ["-o", "json"] if ctx.args.output == "json" else []
    ctx.kubectl("edit", ctx.args.target, *edit_format, capture=False,
                env={"KUBE_EDITOR": wrapper, _WRAPPED_EDITOR_ENV: original})
    return EXIT_OK


def _edit_wrapper(argv: list[str]) -> int:
    """The KUBE_EDITOR kubectl runs: stamp the annotation, then the user's editor.

    The user sees the annotation in the editor. Saving nothing else restores
    the file kubectl wrote, so quitting without changes still cancels.
    """
    annotation, txn, path = argv
    editor = os.environ.get(_WRAPPED_EDITOR_ENV) or "vi"
    with open(path, encoding="utf-8", newline="") as fh:
        original = fh.read()
    try:
        stamped = stamp_edit_text(original, annotation, txn)
    except StampError as exc:
        print(f"kubectl lock edit: cannot add {annotation}={txn}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _write_text(path, stamped)
    code = subprocess.call(["sh", "-c", f'{editor} "$1"', "sh", path])
    with open(path, encoding="utf-8", newline="") as fh:
        unchanged = fh.read() == stamped
    if unchanged or code != 0:
        _write_text(path, original)
    return code


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _cmd_prune(ctx: _Context) -> int:
    manager = ctx.manager()
    stale = list(stale_markers(manager, ctx.discovery, namespace=ctx.args.namespace))
    removed: list[StaleMarker] = []
    if ctx.args.apply:
        fence = Fence(ctx.api, discovery=ctx.discovery)
        removed = [s for s in stale if fence.unstamp(s.key, s.txn)]
    rows = [["OBJECT", "MARKER", "WHY", "REMOVED" if ctx.args.apply else "ACTION"]] + [
        [s.key.describe(), s.txn, s.why, ("yes" if s in removed else "no (changed)") if ctx.args.apply
         else "would remove (--apply)"] for s in stale]
    items = [{"object": s.key.describe(), "txn": s.txn, "why": s.why, "removed": s in removed} for s in stale]
    ctx.emit({"stale": items, "applied": bool(ctx.args.apply)}, _table(rows) if stale else "no stale markers")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[_Context], int]] = {
    "acquire": _cmd_acquire,
    "renew": _cmd_renew,
    "release": _cmd_release,
    "status": _cmd_status,
    "list": _cmd_list,
    "force-release": _cmd_force_release,
    "audit": _cmd_audit,
    "prune": _cmd_prune,
    "members": _cmd_members,
    "apply": _cmd_apply,
    "delete": _cmd_delete,
    "edit": _cmd_edit,
}

if __name__ == "__main__":
    if sys.argv[1:2] == [_EDIT_WRAPPER]:
        sys.exit(_edit_wrapper(sys.argv[2:]))
    sys.exit(main())
