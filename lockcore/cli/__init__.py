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
    kubectl lock prune                      # expired locks, stale markers (--apply removes)
    lockcore acquire cm/cfg --txn t42 --ttl 5m --no-fence   # advisory only: nothing enforces it
    kubectl lock acquire deploy/web --txn t42 --ttl 10m --member group:sre --member sa:shop:deployer
    kubectl lock members add deploy/web --txn t42 --member user:bob   # identity-bound locks only
    kubectl lock run --txn t42 --ttl 1m -f k8s/ -- kubectl lock apply -f k8s/   # a command as a transaction
    helm template web ./chart | kubectl lock stamp --txn t42           # stamped as apply stamps

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
    4  the lock has expired or is gone (LockExpiredError, on ``renew``; ``run``: lost while
       the command ran, which is then terminated)
    5  no cluster to talk to: no kubeconfig, a missing kubeconfig file, an unknown
       ``--context``, or an API server that does not answer

``run`` exits with its command's status otherwise (128 + N for signal N, 127 not
found, 126 not executable, as a shell). ``apply``, ``edit``, ``delete``, ``run``
and ``stamp`` take ``--txn`` from ``$LEASEGATE_TXN`` when it is not given.

Every failure is one line on stderr, ``error: ...``, as kubectl prints it;
usage errors add ``See 'kubectl lock acquire --help' for usage.``
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from lockcore.cli import commands, running
from lockcore.cli import plugin as helpers
from lockcore.cli.context import Context
from lockcore.cli.failures import HANDLED, exit_code, explain, message, needs_saying
from lockcore.cli.parser import build_parser, parse

# Modules: parser (the grammar), context (what a command needs), commands (locks themselves),
# plugin (kubectl lock's helpers around the real kubectl), output (how locks look), failures
# (exit codes and the one error line).
_COMMANDS: dict[str, Callable[[Context], int]] = {**commands.COMMANDS, "run": running.cmd_run, **helpers.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lockcore``."""
    return _run("lockcore", list(sys.argv[1:] if argv is None else argv), plugin=False)


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kubectl-lock`` (``kubectl lock ...``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [helpers.EDIT_WRAPPER]:
        return helpers.edit_wrapper(args[1:])
    return _run("kubectl lock", args, plugin=True)


def _run(prog: str, argv: list[str], *, plugin: bool) -> int:
    parser = build_parser(prog, plugin=plugin)
    try:
        args = parse(parser, argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    ctx: Context | None = None
    try:
        ctx = Context(args, prog)
        return _COMMANDS[args.command](ctx)
    except HANDLED as exc:
        error = explain(exc, ctx.server() if ctx is not None else "")
        if needs_saying(error):
            print(f"error: {message(error)}", file=sys.stderr)
        return exit_code(error)
