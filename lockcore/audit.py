"""The record of a blocked write, and every form it takes.

:class:`BlockedWrite` is the one list of the record's fields; each trace the
webhook leaves is a view of it, defined here:

* the JSON log line's fields (:meth:`BlockedWrite.log_fields`);
* the AdmissionResponse's ``auditAnnotations`` (:meth:`BlockedWrite.audit_annotations`);
* a ``WriteBlocked`` Event (core ``v1``) on the object whose write a lock
  refused, or would have refused in warn/dryrun mode: its body
  (:func:`event_body`), name and aggregation key (:func:`event_name`,
  :func:`event_key`), and its parse (:meth:`AuditEntry.from_event`);
* a result in the OpenReports ledger (:mod:`lockcore.ledger`), whose
  ``properties`` are :meth:`BlockedWrite.properties`.

``lockcore audit`` and ``kubectl lock audit`` read the ledger and the Events
back through the same module (:func:`list_blocked_writes` for Events).

Example::

    >>> from datetime import datetime, timezone
    >>> w = BlockedWrite(user="bob", operation="UPDATE", group="", kind="ConfigMap",
    ...                  namespace="shop", name="settings", lease="lg.configmap.settings",
    ...                  holder="t42", declared_txn="", mode="deny", reason="not-in-transaction")
    >>> BlockedWrite.from_annotations(w.annotations()) == w
    True
    >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> body = event_body(w, name="settings.x", namespace="shop", at=at, api_version="v1")
    >>> AuditEntry.from_event(body) == AuditEntry(w, time="2026-01-01T00:00:00Z", count=1,
    ...                                            first_seen="2026-01-01T00:00:00Z")
    True
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from kubernetes import client

from lockcore.kube import format_time

EVENT_REASON = "WriteBlocked"
EVENT_COMPONENT = "leasegate-webhook"
# Cluster-scoped objects have no namespace; Kubernetes records their Events in "default".
CLUSTER_EVENT_NAMESPACE = "default"
_ANNOTATION_PREFIX = "audit.leasegate.io/"
# The fields auditAnnotations carry (the API server's audit log has user and object already).
_AUDIT_ANNOTATION_FIELDS = ("reason", "lease", "mode", "holder", "declared_txn")
_NOT_NAME = re.compile(r"[^a-z0-9.-]+")


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

    def properties(self) -> dict[str, str]:
        """Every field as a string map with kebab-case keys (a ledger result's ``properties``)."""
        return {_kebab(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], prefix: str = "") -> BlockedWrite:
        """The record back from :meth:`properties` (or any map with ``prefix`` before each key)."""
        return cls(**{f.name: str(properties.get(prefix + _kebab(f.name)) or "") for f in fields(cls)})

    def annotations(self) -> dict[str, str]:
        """The fields as Event annotations (machine-readable, survives aggregation)."""
        return {_ANNOTATION_PREFIX + k: v for k, v in self.properties().items()}

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> BlockedWrite:
        return cls.from_properties(annotations, prefix=_ANNOTATION_PREFIX)

    def log_fields(self, **extra: Any) -> dict[str, Any]:
        """The JSON log line's fields: the record's, then what only the request knows (``extra``)."""
        return {**asdict(self), **extra}

    def audit_annotations(self, decision: str) -> dict[str, str]:
        """The AdmissionResponse's auditAnnotations: the decision and the lock's fields that are set.

        >>> BlockedWrite.from_properties({"lease": "shop/lg.x", "mode": "deny"}).audit_annotations("deny")
        {'decision': 'deny', 'lease': 'shop/lg.x', 'mode': 'deny'}
        """
        chosen = {_kebab(name): getattr(self, name) for name in _AUDIT_ANNOTATION_FIELDS}
        return {"decision": decision, **{k: v for k, v in chosen.items() if v}}

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


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def event_namespace(write: BlockedWrite) -> str:
    """Where the Event of ``write`` lives: the object's namespace, or ``default``."""
    return write.namespace or CLUSTER_EVENT_NAMESPACE


def event_key(write: BlockedWrite, bucket: int) -> tuple[str | int, ...]:
    """What one Event aggregates: object + user + holder + mode within window ``bucket``."""
    return (write.namespace, write.group, write.kind, write.name, write.user, write.holder, write.mode, bucket)


def event_name(write: BlockedWrite, bucket: int) -> str:
    """The Event's name, derived from :func:`event_key`: every worker and replica picks the same one.

    >>> event_name(BlockedWrite.from_properties({"name": "Web_Config"}), 7).startswith("web-config.leasegate.")
    True
    """
    digest = hashlib.sha256("|".join(map(str, event_key(write, bucket))).encode()).hexdigest()[:16]
    hint = _NOT_NAME.sub("-", write.name[:200].lower()).strip("-.") or "object"
    return f"{hint}.leasegate.{digest}"


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
    involved = object_reference(write, api_version=api_version, object_uid=object_uid)
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
    """One blocked write read back (a ledger result or an Event): the write, when last seen, how often.

    ``time`` is when it was last seen, ``first_seen`` when first ("" if unknown).
    """

    write: BlockedWrite
    time: str
    count: int
    first_seen: str = ""

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> AuditEntry:
        """Parse an Event as JSON (the API's dict, not a client model)."""
        metadata = event.get("metadata") or {}
        when = event.get("lastTimestamp") or event.get("eventTime") or metadata.get("creationTimestamp") or ""
        first = event.get("firstTimestamp") or event.get("eventTime") or metadata.get("creationTimestamp") or ""
        return cls(BlockedWrite.from_annotations(metadata.get("annotations") or {}), time=str(when),
                   count=int(event.get("count") or 1), first_seen=str(first))

    def as_json(self) -> dict[str, Any]:
        """The flat JSON ``lockcore audit -o json`` prints: time, count, first/last seen and the write's fields."""
        return {"time": self.time, "count": self.count, "first_seen": self.first_seen, "last_seen": self.time,
                **asdict(self.write)}


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


def object_reference(write: BlockedWrite, *, api_version: str, object_uid: str = "") -> dict[str, Any]:
    """The written object as an ObjectReference (an Event's involvedObject, a report result's resource)."""
    ref: dict[str, Any] = {"apiVersion": api_version, "kind": write.kind, "name": write.name}
    if write.namespace:
        ref["namespace"] = write.namespace
    if object_uid:
        ref["uid"] = object_uid
    return ref
