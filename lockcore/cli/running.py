"""``kubectl lock run`` / ``lockcore run``: a command run as a transaction (see :mod:`lockcore.pipeline`).

    kubectl lock run --txn t42 --ttl 1m -f k8s/ -- kubectl lock apply -f k8s/

Progress goes to stderr (stdout is the command's); ``-o json`` prints, once
the command has ended and the locks are released, what was held and how it
ended. Exit codes: the command's status (128 + signal if a signal ended it),
3 if an object is locked by another transaction (the command is not run), 4 if
a lock was lost while it ran (the command is terminated), 127 / 126 if the
command cannot be found / executed, and the CLI's usual 1, 2 and 5.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from lockcore.cli.context import Context
from lockcore.cli.failures import UsageError
from lockcore.cli.manifests import stamped_objects
from lockcore.cli.output import locks_json
from lockcore.cli.parser import EXIT_EXPIRED
from lockcore.manager import LeaseManager
from lockcore.naming import ResourceKey
from lockcore.pipeline import (
    CannotStartError,
    Interrupted,
    RunOutcome,
    exit_status,
    launch_failure,
    run_locked,
    targets,
)


def run_keys(ctx: Context) -> list[ResourceKey]:
    """Every object the files and the arguments name (duplicates once), kinds resolved by discovery."""
    named = [ctx.discovery.key(target, ctx.namespace()) for target in ctx.args.targets]
    if ctx.args.filename:
        for found in targets(stamped_objects(ctx, ctx.args.filename, ctx.args.txn)):
            named.append(ctx.discovery.key(found.target, found.namespace or ctx.namespace()))
    if not named:
        raise UsageError("run needs objects to lock: -f FILE or TYPE/NAME")
    return list(dict.fromkeys(named))


def cmd_run(ctx: Context) -> int:
    command: list[str] = ctx.args.exec
    if not command:
        raise UsageError("run needs a command after --, e.g. -- kubectl lock apply -f k8s/")
    failure = launch_failure(command)
    if failure is not None:  # as a shell says it, before anything is locked
        print(f"error: {failure[1]}", file=sys.stderr)
        return failure[0]
    keys, manager = run_keys(ctx), ctx.manager()

    def held() -> None:
        for key in keys:
            print(f"locked {key.describe()} for transaction {ctx.args.txn} (lease {manager.ref_for(key)})",
                  file=sys.stderr, flush=True)
    try:
        outcome = run_locked(manager, keys, ctx.args.txn, ctx.args.ttl, command, wait=ctx.args.wait, on_held=held)
    except CannotStartError as exc:  # found by the check above, gone or unrunnable by the time it started
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    except Interrupted as exc:
        print(f"error: {exc} before the command started; nothing is held", file=sys.stderr)
        return exit_status(-exc.signum)
    print(f"released the locks of transaction {ctx.args.txn}", file=sys.stderr)
    if ctx.args.output == "json":
        print(json.dumps(_outcome_json(ctx, manager, keys, outcome), indent=2, sort_keys=True))
    if outcome.lost is not None:
        ref = outcome.lost.lease
        lost = next((k.describe() for k in keys if manager.ref_for(k) == ref), "")
        print(f"error: lost the lock on {lost} (lease {ref}), so the command was terminated: {outcome.lost.cause}",
              file=sys.stderr)
        return EXIT_EXPIRED
    return outcome.status


def _outcome_json(ctx: Context, manager: LeaseManager, keys: list[ResourceKey], outcome: RunOutcome) -> dict[str, Any]:
    lost = outcome.lost
    return {"txn": ctx.args.txn, "ttlSeconds": ctx.args.ttl, "locks": locks_json(manager, keys),
            "exitCode": outcome.status, "released": True,
            "lost": None if lost is None else {"lease": {"namespace": lost.lease.namespace, "name": lost.lease.name},
                                               "reason": str(lost.cause)}}
