"""The command line's grammar: every subcommand, its flags, and kubectl-style usage errors.

>>> args = build_parser("lockcore").parse_args(["release", "cm/x", "--txn", "t42"])
>>> args.command, args.targets, args.txn
('release', ['cm/x'], 't42')
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import NoReturn

from lockcore.members import MembersError, parse_spec
from lockcore.naming import InvalidKeyError, validate_txn
from lockcore.pipeline import TXN_ENV
from lockcore.settings import Profile

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_LOCKED, EXIT_EXPIRED, EXIT_NO_CLUSTER = 0, 1, 2, 3, 4, 5
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Parser(argparse.ArgumentParser):
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

    common: Parser
    txn: Parser
    txn_env: Parser
    target: Parser
    targets: Parser
    ttl: Parser
    members: Parser

    @classmethod
    def build(cls) -> _Parents:
        common = Parser(add_help=False)
        common.add_argument("--kubeconfig", help="path to the kubeconfig file")
        common.add_argument("--context", help="the kubeconfig context to use")
        common.add_argument("-n", "--namespace", help="namespace of the object (default: the context's)")
        common.add_argument("-o", "--output", choices=("human", "json"), default="human")
        common.add_argument("--lock-namespace", help="namespace of cluster-scoped objects' leases "
                            "(default: $LEASEGATE_LOCK_NAMESPACE or leasegate-system)")
        common.add_argument("--profile", choices=[p.value for p in Profile], help="lease layout")
        parents = cls(common, *(Parser(add_help=False) for _ in range(6)))
        parents.txn.add_argument("--txn", required=True, type=_txn, help="transaction name")
        # What writes as part of a transaction (or runs one) takes it from the environment
        # `kubectl lock run` gives its command. argparse runs `type` on a string default too.
        from_env = os.environ.get(TXN_ENV) or None
        parents.txn_env.add_argument("--txn", required=from_env is None, default=from_env, type=_txn,
                                     help=f"transaction name (default: ${TXN_ENV})")
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
    parser = Parser(
        prog=prog, description="Lease-based transaction locks on Kubernetes objects.",
        epilog="exit codes: 0 ok, 1 API error, 2 usage, 3 locked by another txn, 4 expired/gone, "
               "5 no cluster (kubeconfig, context, server unreachable)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_acquire(sub, p)
    sub.add_parser("renew", parents=[p.common, p.target, p.txn, p.ttl], help="extend a lock")
    _add_lock_commands(sub, p)
    _add_run(sub, p)
    if plugin:
        _add_plugin_commands(sub, p)
    return parser


def _add_acquire(sub: argparse._SubParsersAction[Parser], p: _Parents) -> None:
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


def _add_lock_commands(sub: argparse._SubParsersAction[Parser], p: _Parents) -> None:
    """Everything but acquire that works on locks themselves."""
    sub.add_parser("release", parents=[p.common, p.targets, p.txn],
                   help="release locks (no-op for those not held by the txn)")
    sub.add_parser("status", parents=[p.common, p.target], help="show who holds an object's lock")
    listing = sub.add_parser("list", parents=[p.common], help="list locks (all namespaces unless -n)")
    listing.add_argument("--txn", type=_txn, help="only this transaction's locks")
    sub.add_parser("force-release", parents=[p.common, p.target], help="delete a lock whoever holds it")
    prune = sub.add_parser("prune", parents=[p.common],
                           help="list locks that expired unreleased (their names stay reserved) and objects "
                                "marked leasegate.io/locked that no live lock stands behind (all namespaces "
                                "unless -n); --apply releases those locks and removes those markers")
    prune.add_argument("--apply", action="store_true",
                       help="release the expired locks and remove the stale markers (default: only list them)")
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


def _add_run(sub: argparse._SubParsersAction[Parser], p: _Parents) -> None:
    run = sub.add_parser("run", parents=[p.common, p.txn_env, p.ttl],
                         usage="%(prog)s --txn T --ttl D [--wait D] (-f FILE... | TYPE/NAME...) -- COMMAND [ARGS...]",
                         help="lock objects (all or nothing) while COMMAND runs with $LEASEGATE_TXN set; "
                              "renewed meanwhile, released however it ends; exits with its status")
    run.add_argument("targets", metavar="TYPE/NAME", nargs="*", help="objects to lock, e.g. deployment/web")
    run.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                     help="manifests naming the objects to lock (file, directory, or - for stdin; repeatable)")
    run.add_argument("--wait", type=parse_duration, help="queue this long for a busy lock (e.g. 30s)")


def _add_plugin_commands(sub: argparse._SubParsersAction[Parser], p: _Parents) -> None:
    """``kubectl lock`` only: helpers that run the real kubectl with the txn annotation."""
    apply = sub.add_parser("apply", parents=[p.common, p.txn_env],
                           help="kubectl apply, every object annotated with the txn")
    apply.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    sub.add_parser("delete", parents=[p.common, p.target, p.txn_env],
                   help="stamp the txn annotation, then kubectl delete")
    sub.add_parser("edit", parents=[p.common, p.target, p.txn_env],
                   help="kubectl edit (YAML, or JSON with -o json); opens with the txn annotation set")
    sub.add_parser("stamp", parents=[p.common, p.txn_env],
                   help="manifests on stdin to stdout stamped as apply stamps them (a Helm post-renderer)")


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed; for ``run``, what follows ``--`` is the command (``args.exec``)."""
    if argv[:1] == ["run"]:
        cut = argv.index("--") if "--" in argv else len(argv)
        args = parser.parse_args(argv[:cut])
        args.exec = argv[cut + 1:]
        return args
    return parser.parse_args(argv)
