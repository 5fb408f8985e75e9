"""The record of a blocked write, and its form as a Kubernetes Event.

The webhook writes one ``WriteBlocked`` Event (``events.k8s.io/v1`` shape in
the core ``v1`` Event API) on the object whose write a lock refused, or would
have refused in warn/dryrun mode; ``lockcore audit`` and ``kubectl lock audit``
read them back. Both sides go through this module, so the format has one
definition.

Example::

    >>> w = BlockedWrite(user="bob", operation="UPDATE", group="", kind="ConfigMap",
    ...                  namespace="shop", name="settings", lease="lg.configmap.settings",
    ...                  holder="t42", declared_txn="", mode="deny", reason="not-in-transaction")
    >>> BlockedWrite.from_annotations(w.annotations()) == w
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

EVENT_REASON = "WriteBlocked"
EVENT_COMPONENT = "leasegate-webhook"
_ANNOTATION_PREFIX = "audit.leasegate.io/"


@dataclass(frozen=True)
class BlockedWrite:
    """Who tried to write what, and which lock stood in the way."""

    user: str
    operation: str
    group: str
    kind: str
    namespace: str
    name: str
    lease: str
    holder: str
    declared_txn: str
    mode: str
    reason: str

    def annotations(self) -> dict[str, str]:
        """The fields as Event annotations (machine-readable, survives aggregation)."""
        return {_ANNOTATION_PREFIX + k.replace("_", "-"): v for k, v in asdict(self).items()}

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> BlockedWrite:
        return cls(
            **{
                f.name: str(annotations.get(_ANNOTATION_PREFIX + f.name.replace("_", "-"), ""))
                for f in fields(cls)
            }
        )

    def message(self) -> str:
        """One line for ``kubectl describe`` / ``kubectl get events``."""
        declared = f" (declared {self.declared_txn!r})" if self.declared_txn else ""
        verb = "blocked" if self.mode == "deny" else f"would be blocked ({self.mode})"
        return (
            f"{self.operation} by {self.user}{declared} {verb}: "
            f"lease {self.lease} held by transaction {self.holder!r}"
        )
