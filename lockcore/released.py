"""What a release did to one lock: released it, or found it not held by the transaction (and by whom).

>>> ref = LeaseRef("shop", "lg.configmap.settings")
>>> Released(ref, "t42", released=False, holder="t7").describe()
'not held by t42 (held by t7)'
>>> Released(ref, "t42", released=False).describe()
'not held by t42 (no lock)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lockcore.naming import LeaseRef


@dataclass(frozen=True)
class Released:
    """The outcome of releasing ``lease`` for ``txn``.

    ``released``: the Lease was ``txn``'s and is deleted now. Otherwise
    ``holder`` names the transaction that holds it ("" when there is no lock).
    """

    lease: LeaseRef
    txn: str
    released: bool
    holder: str = ""

    def describe(self) -> str:
        """``released``, ``not held by t42 (held by t7)`` or ``not held by t42 (no lock)``."""
        if self.released:
            return "released"
        return f"not held by {self.txn} ({f'held by {self.holder}' if self.holder else 'no lock'})"

    def as_json(self) -> dict[str, Any]:
        """The outcome as ``release -o json`` shows it."""
        return {"lease": {"namespace": self.lease.namespace, "name": self.lease.name}, "released": self.released,
                "heldBy": self.holder or None, "outcome": self.describe()}
