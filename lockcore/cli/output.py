"""How locks look on the terminal and in ``-o json``: one shape for every command that shows them.

>>> print(table([["A", "BB"], ["ccc", "d"]]))
A     BB
ccc   d
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lockcore.lease import LeaseState, format_micro_time
from lockcore.manager import LeaseManager
from lockcore.naming import LeaseRef, ResourceKey


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


def members_text(state: LeaseState) -> str:
    """An identity-bound lock's members as ``status`` and ``list`` print them; "-" when not bound."""
    if state.members is None:
        return "-"
    return ",".join(state.members.specs()) or "(unreadable: nobody)"


def table(rows: list[list[str]]) -> str:
    """Rows as kubectl prints them: left-aligned columns three spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def lease_json(ref: LeaseRef) -> dict[str, str]:
    """A Lease reference as JSON."""
    return {"namespace": ref.namespace, "name": ref.name}


def locks_json(manager: LeaseManager, keys: list[ResourceKey]) -> list[dict[str, Any]]:
    """Each object with the Lease that locks it (``acquire`` and ``release`` output)."""
    return [{"lease": lease_json(manager.ref_for(key)), "resource": key.describe()} for key in keys]
