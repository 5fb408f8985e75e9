"""The commands that work on locks themselves: acquire, renew, release, status, list, audit, prune, members.

Each takes the invocation's :class:`~lockcore.cli.context.Context` and returns the exit code::

    >>> COMMANDS["status"](ctx)  # doctest: +SKIP
    configmap/x -n shop is not locked
    0
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from datetime import datetime

from lockcore.advice import acquire_warnings
from lockcore.cli.context import Context
from lockcore.cli.failures import UsageError
from lockcore.cli.output import lease_json, lock_json, locks_json, members_text, table
from lockcore.cli.parser import EXIT_OK
from lockcore.clock import utcnow
from lockcore.fence import Fence
from lockcore.holding import acquire_all
from lockcore.kube import format_time
from lockcore.ledger import AuditFilter, blocked_writes, parse_since
from lockcore.locate import find_lock
from lockcore.members import Members
from lockcore.naming import LeaseRef, describe_object
from lockcore.prune import expired_locks, stale_markers


def _cmd_acquire(ctx: Context) -> int:
    items, manager = ctx.resolved(), ctx.manager()
    keys = [item.key for item in items]
    bound = ctx.args.member or ctx.args.members_only
    acquire_all(manager, keys, ctx.args.txn, ctx.args.ttl, wait=ctx.args.wait, fence=not ctx.args.no_fence,
                members=ctx.args.member if bound else None)
    members = Members.of(ctx.args.member).with_user(manager.principal()).specs() if bound else None
    only = f", members {', '.join(members)}" if members else ""
    lines = [f"locked {key.describe()} for transaction {ctx.args.txn} (lease {manager.ref_for(key)}{only})"
             for key in keys]
    ctx.emit({"locks": locks_json(manager, keys), "txn": ctx.args.txn, "ttlSeconds": ctx.args.ttl,
              "members": list(members) if members else None}, "\n".join(lines))
    # Checked once the locks are held, so owners locked by this same command count as locked.
    for warning in acquire_warnings(ctx.api, manager, items, retry_hint=_acquire_hint(ctx),
                                    configurations=ctx.args.webhook_configuration):
        print(f"Warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _acquire_hint(ctx: Context) -> str:
    """The command that locks one more object (``{target}``) the way this one locked these."""
    # Whole seconds: the Lease holds them (fractions round up), and `:g` could print 1e+06.
    flags = ctx.flags("kubeconfig", "context", "lock-namespace", "profile")
    flags += [f"--member={m}" for m in ctx.args.member] + ["--members-only"] * ctx.args.members_only
    return " ".join([ctx.prog, "acquire", "{target}", *flags, "--txn", ctx.args.txn,
                     "--ttl", f"{math.ceil(ctx.args.ttl)}s"])


def _cmd_renew(ctx: Context) -> int:
    key, manager, ref = ctx.target()
    manager.renew(ref, ctx.args.txn, ctx.args.ttl)
    ctx.emit({"lease": lease_json(ref), "txn": ctx.args.txn,
              "ttlSeconds": ctx.args.ttl}, f"renewed {key.describe()} for {ctx.args.txn}")
    return EXIT_OK


def _cmd_release(ctx: Context) -> int:
    keys, manager = ctx.keys(), ctx.manager()
    outcomes = manager.release_each([manager.ref_for(key) for key in keys], ctx.args.txn)
    locks = [{**lock, **outcome.as_json()} for lock, outcome in zip(locks_json(manager, keys), outcomes)]
    ctx.emit({"locks": locks, "released": all(outcome.released for outcome in outcomes)},
             "\n".join(f"{outcome.describe()} {key.describe()}" if outcome.released
                       else f"{key.describe()}: {outcome.describe()}" for key, outcome in zip(keys, outcomes)))
    return EXIT_OK


def _cmd_force_release(ctx: Context) -> int:
    key, manager, ref = ctx.target()
    deleted = manager.force_release(ref)
    ctx.emit({"lease": lease_json(ref), "deleted": deleted},
             f"force-released {key.describe()}" if deleted else f"{key.describe()} was not locked")
    return EXIT_OK


def _cmd_status(ctx: Context) -> int:
    key, manager, _ = ctx.target()
    ref, state = find_lock(manager, key)
    if state is None:
        ctx.emit({"lease": lease_json(ref), "locked": False},
                 f"{key.describe()} is not locked")
        return EXIT_OK
    data = lock_json(state, utcnow(), ctx.settings.clock_skew_seconds)
    data["locked"] = data["live"]
    verdict = "locked" if data["live"] else "not locked (expired lease)"
    bound = f", members {members_text(state)}" if state.members is not None else ""
    ctx.emit(data, f"{key.describe()} is {verdict} by transaction {state.holder} "
                   f"(principal {state.principal or '?'}{bound}, lease {ref}, "
                   f"{data['secondsLeft']:.0f}s left)")
    return EXIT_OK


def _cmd_members(ctx: Context) -> int:
    if not ctx.args.member:
        raise UsageError(f"members {ctx.args.change} needs at least one --member")
    key, manager, ref = ctx.target()
    members = manager.change_members(ref, ctx.args.txn, **{ctx.args.change: ctx.args.member})
    ctx.emit({"lease": lease_json(ref), "txn": ctx.args.txn, "members": list(members.specs())},
             f"members of the lock on {key.describe()} (transaction {ctx.args.txn}): {', '.join(members.specs())}")
    return EXIT_OK


def _cmd_list(ctx: Context) -> int:
    states = ctx.manager().list_locks(ctx.args.txn, namespace=ctx.args.namespace)
    now = utcnow()
    items = [lock_json(s, now, ctx.settings.clock_skew_seconds) for s in states]
    rows = [["NAMESPACE", "LEASE", "TXN", "PRINCIPAL", "MEMBERS", "RESOURCE", "LEFT"]] + [
        [i["lease"]["namespace"], i["lease"]["name"], i["txn"], i["principal"], members_text(s), i["resource"],
         f"{i['secondsLeft']:.0f}s" if i["live"] else "expired"] for s, i in zip(states, items)
    ]
    ctx.emit({"items": items}, table(rows) if items else "no locks")
    return EXIT_OK


def _cmd_audit(ctx: Context) -> int:
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
    ctx.emit({"items": items}, table(rows) if items else "no blocked writes")
    return EXIT_OK


def _cmd_prune(ctx: Context) -> int:
    manager = ctx.manager()
    apply = bool(ctx.args.apply)
    # Expired locks first: releasing one removes its marker too, so it is not listed twice.
    expired = [(state, apply and manager.release_expired(LeaseRef(state.namespace, state.name)))
               for state in expired_locks(manager, namespace=ctx.args.namespace)]
    stale = list(stale_markers(manager, ctx.discovery, namespace=ctx.args.namespace))
    fence = Fence(ctx.api, discovery=ctx.discovery)
    removed = [apply and fence.unstamp(s.key, s.txn) for s in stale]
    action = "REMOVED" if apply else "ACTION"

    def done(gone: bool) -> str:
        return ("yes" if gone else "no (changed)") if apply else "would remove (--apply)"
    locks = [["LEASE", "OBJECT", "TXN", "EXPIRED AT", action]] + [
        [f"{s.namespace}/{s.name}", s.resource.describe() if s.resource else "-", s.holder,
         _when(s.expires_at()), done(gone)] for s, gone in expired]
    markers = [["OBJECT", "MARKER", "WHY", action]] + [
        [s.key.describe(), s.txn, s.why, done(gone)] for s, gone in zip(stale, removed)]
    text = "\n\n".join([table(locks)] * bool(expired) + [table(markers)] * bool(stale)) \
        or "no expired locks or stale markers"
    ctx.emit({"expired": [{"lease": f"{s.namespace}/{s.name}", "object": s.resource.describe() if s.resource else "",
                           "txn": s.holder, "removed": gone} for s, gone in expired],
              "stale": [{"object": s.key.describe(), "txn": s.txn, "why": s.why, "removed": gone}
                        for s, gone in zip(stale, removed)],
              "applied": apply}, text)
    return EXIT_OK


def _when(at: datetime | None) -> str:
    return format_time(at) if at is not None else "-"


COMMANDS: dict[str, Callable[[Context], int]] = {
    "acquire": _cmd_acquire,
    "renew": _cmd_renew,
    "release": _cmd_release,
    "status": _cmd_status,
    "list": _cmd_list,
    "force-release": _cmd_force_release,
    "audit": _cmd_audit,
    "prune": _cmd_prune,
    "members": _cmd_members,
}
