"""The record of a blocked write, and its form as a Kubernetes Event.

The webhook writes one ``WriteBlocked`` Event (``events.k8s.io/v1`` shape in
the core ``v1`` Event API) on the object whose write a lock refused, or would
have refused in warn/dryrun mode; ``lockcore audit`` and ``kubectl lock audit``
read them back. Both sides go through this module, so the format has one
definition: the webhook builds the Event with :func:`event_body` (it keeps only
the queue, the aggregation and the writing), the CLI reads them back with
:func:`list_blocked_writes`, and :meth:`AuditEntry.from_event` is the parse.

Example::

    >>> from datetime import datetime, timezone
    >>> w = BlockedWrite(user="bob", operation="UPDATE", group="", kind="ConfigMap",
    ...                  namespace="shop", name="settings", lease="lg.configmap.settings",
    ...                  holder="t42", declared_txn="", mode="deny", reason="not-in-transaction")
    >>> BlockedWrite.from_annotations(w.annotations()) == w
    True
    >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> body = event_body(w, name="settings.x", namespace="shop", at=at, api_version="v1")
    >>> AuditEntry.from_event(body) == AuditEntry(w, time="2026-01-01T00:00:00Z", count=1)
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from kubernetes import client

from lockcore.kube import format_time

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

    def involves(self, txn: str) -> bool:
        """Whether ``txn`` held the lock in the way, or is the transaction the writer declared."""
        return txn in (self.holder, self.declared_txn)


def event_time(at: datetime) -> str:
    """A core v1 Event timestamp (``firstTimestamp``, ``lastTimestamp``): whole seconds, metav1.Time."""
    return format_time(at)


def event_body(write: BlockedWrite, *, name: str, namespace: str, at: datetime, api_version: str,
               object_uid: str = "") -> dict[str, Any]:
    """The ``WriteBlocked`` Event (core v1) that records ``write``, first seen ``at``, count 1.

    ``namespace`` is where the Event lives (cluster-scoped objects' go to
    ``default``); ``api_version`` and ``object_uid`` name the involved object.
    """
    stamp = event_time(at)
    involved: dict[str, Any] = {"apiVersion": api_version, "kind": write.kind, "name": write.name}
    if write.namespace:
        involved["namespace"] = write.namespace
    if object_uid:
        involved["uid"] = object_uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "annotations": write.annotations()},
        "involvedObject": involved,
        "reason": EVENT_REASON,
        "message": write.message(),
        "type": "Warning",
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": EVENT_COMPONENT,
        "action": f"{write.operation.title()}Blocked",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


@dataclass(frozen=True)
class AuditEntry:
    """One WriteBlocked Event read back: the write, when it was last seen, how often."""

    write: BlockedWrite
    time: str
    count: int

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> AuditEntry:
        """Parse an Event as JSON (the API's dict, not a client model)."""
        metadata = event.get("metadata") or {}
        when = event.get("lastTimestamp") or event.get("eventTime") or metadata.get("creationTimestamp") or ""
        return cls(BlockedWrite.from_annotations(metadata.get("annotations") or {}), time=str(when),
                   count=int(event.get("count") or 1))

    def as_json(self) -> dict[str, Any]:
        """The flat JSON ``lockcore audit -o json`` prints: time, count and the write's fields."""
        return {"time": self.time, "count": self.count, **asdict(self.write)}


def list_blocked_writes(api: client.ApiClient, namespace: str | None = None,
                        txn: str | None = None) -> list[AuditEntry]:
    """The WriteBlocked Events in ``namespace`` (all namespaces if None), oldest first.

    With ``txn``, only writes blocked by that transaction's locks or declaring it.

    >>> list_blocked_writes(api_client, "shop", txn="t42")  # doctest: +SKIP
    [AuditEntry(write=BlockedWrite(user='bob', ...), time='2026-01-01T00:00:00Z', count=2)]
    """
    events = client.CoreV1Api(api)
    selector = f"reason={EVENT_REASON}"
    response: Any  # the raw HTTP response (_preload_content=False): no model round trip
    if namespace:
        response = events.list_namespaced_event(namespace, field_selector=selector, _preload_content=False)
    else:
        response = events.list_event_for_all_namespaces(field_selector=selector, _preload_content=False)
    entries = [AuditEntry.from_event(event) for event in json.loads(response.data).get("items") or []]
    return sorted((e for e in entries if not txn or e.write.involves(txn)), key=lambda e: e.time)
