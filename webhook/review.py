"""AdmissionReview ``admission.k8s.io/v1``: parse a request, build a response.

Parsing turns the API server's JSON into a frozen :class:`AdmissionRequest`
holding only what the decision needs (never the object bodies), so the rest of
the webhook works on typed values. Anything that is not a well-formed review
raises :class:`ReviewError` carrying the HTTP status the app answers with
(400 malformed, 413 too large, 415 wrong content type): a broken request is a
protocol error, never a lock decision.

Example::

    >>> body = b'''{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    ...   "request": {"uid": "u1", "operation": "CREATE",
    ...     "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
    ...     "resource": {"group": "", "version": "v1", "resource": "configmaps"},
    ...     "namespace": "shop", "name": "cfg", "userInfo": {"username": "bob"},
    ...     "object": {"metadata": {"annotations": {"leasegate.io/transaction": "t1"}}}}}'''
    >>> req = parse_review(body, "application/json", max_body_bytes=1 << 20)
    >>> req.uid, req.name, req.new_annotations["leasegate.io/transaction"]
    ('u1', 'cfg', 't1')
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lockcore.kube import LEASES, NAMESPACES
from lockcore.lease import LeaseState

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
_EMPTY: Mapping[str, str] = {}

# Metadata fields that change on every write and so say nothing about whether
# an update did more than drop finalizers (or than write status).
_VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields", "generation"})


class ReviewError(ValueError):
    """The body is not an AdmissionReview the webhook can answer.

    ``status`` is the HTTP status to reply with; ``uid`` is the request uid
    when it could be read (for logging).
    """

    def __init__(self, status: int, message: str, *, uid: str = "") -> None:
        self.status = status
        self.message = message
        self.uid = uid
        super().__init__(f"HTTP {status}: {message}")


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of an admission request the lock decision and the audit need.

    ``name`` comes from ``request.name`` or else the object's metadata; it is
    empty for a ``generateName`` create whose name is not yet known.
    ``new_annotations`` are the annotations of ``request.object`` (CREATE,
    UPDATE), ``old_annotations`` those of ``request.oldObject`` (UPDATE,
    DELETE), and ``new_labels``/``old_labels`` their labels.
    ``finalizer_removal_only`` is true for an UPDATE of an object already being
    deleted that only removes finalizers; ``status_only`` for an UPDATE that
    changes nothing outside ``.status`` (the API server keeps some metadata
    changes made through ``/status``, so only such writes may pass unjudged).
    ``old_lease`` is the stored Lease of a write to a Lease, ``new_lease``
    the Lease it would store (CREATE, UPDATE): its members are judged.
    """

    uid: str
    operation: str
    group: str
    version: str
    kind: str
    resource: str
    resource_group: str = ""
    sub_resource: str = ""
    namespace: str = ""
    name: str = ""
    username: str = ""
    groups: tuple[str, ...] = ()
    dry_run: bool = False
    new_annotations: Mapping[str, str] = field(default_factory=dict)
    old_annotations: Mapping[str, str] = field(default_factory=dict)
    field_manager: str = ""
    object_uid: str = ""
    finalizer_removal_only: bool = False
    new_labels: Mapping[str, str] = field(default_factory=dict)
    old_labels: Mapping[str, str] = field(default_factory=dict)
    status_only: bool = False
    old_lease: LeaseState | None = None
    new_lease: LeaseState | None = None

    @property
    def group_kind(self) -> str:
        """``Kind.group`` as kubectl prints it (``ConfigMap`` for the core group)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def object_namespace(self) -> str:
        """The object's namespace: empty for a Namespace, which is cluster-scoped (the API
        server fills ``request.namespace`` of a Namespace with its own name)."""
        return "" if (self.resource_group, self.resource) == NAMESPACES else self.namespace


def parse_review(body: bytes, content_type: str | None, *, max_body_bytes: int) -> AdmissionRequest:
    """Parse and validate an AdmissionReview request body.

    Raises :class:`ReviewError` (413, 415 or 400) for anything else.
    """
    if len(body) > max_body_bytes:
        raise ReviewError(413, f"request body of {len(body)} bytes exceeds the limit of {max_body_bytes}")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ReviewError(415, f"content type must be application/json, got {content_type or 'none'!r}")
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ReviewError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(review, dict):
        raise ReviewError(400, "body must be a JSON object (an AdmissionReview)")
    return request_from_review(review)


def request_from_review(review: Mapping[str, Any]) -> AdmissionRequest:
    """Validate a decoded AdmissionReview and extract its request."""
    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        raise ReviewError(
            400,
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"{_short(review.get('apiVersion'))} {_short(review.get('kind'))}",
        )
    req = review.get("request")
    if not isinstance(req, dict):
        raise ReviewError(400, "AdmissionReview has no request object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError(400, "request.uid is missing or not a string")
    operation = req.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise ReviewError(400, f"request.operation {_short(operation)} is not one of "
                          f"{', '.join(sorted(OPERATIONS))}", uid=uid)
    gvk = _obj(req, "kind", uid)
    gvr = _obj(req, "resource", uid)
    kind = _str(gvk, "kind", uid, "request.kind")
    if not kind:
        raise ReviewError(400, "request.kind.kind is missing", uid=uid)
    resource = (_str(gvr, "group", uid, "request.resource.group"),
                _str(gvr, "resource", uid, "request.resource.resource"))
    return AdmissionRequest(
        uid=uid, operation=operation, group=_str(gvk, "group", uid, "request.kind.group"),
        version=_str(gvk, "version", uid, "request.kind.version"), kind=kind,
        resource=resource[1], resource_group=resource[0],
        sub_resource=_str(req, "subResource", uid, "request.subResource"),
        namespace=_str(req, "namespace", uid, "request.namespace"),
        dry_run=_dry_run(req, uid), **_requester(req, uid), **_objects(req, uid, operation, resource),
    )


def _dry_run(req: Mapping[str, Any], uid: str) -> bool:
    dry_run = req.get("dryRun", False)
    if dry_run is None:
        return False
    if not isinstance(dry_run, bool):
        raise ReviewError(400, "request.dryRun must be a boolean", uid=uid)
    return dry_run


def _requester(req: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """Who writes: username, groups, field manager."""
    user = _obj(req, "userInfo", uid)
    groups = user.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ReviewError(400, "request.userInfo.groups must be a list of strings", uid=uid)
    options = _obj_or_none(req, "options", uid) or {}
    return {"username": _str(user, "username", uid, "request.userInfo.username"), "groups": tuple(groups),
            "field_manager": _str(options, "fieldManager", uid, "request.options.fieldManager")}


def _objects(req: Mapping[str, Any], uid: str, operation: str, resource: tuple[str, str]) -> dict[str, Any]:
    """What the decision needs of the new and the stored object (never the bodies)."""
    new = _obj_or_none(req, "object", uid)
    old = _obj_or_none(req, "oldObject", uid)
    new_meta = _obj_or_none(new, "metadata", uid) if new is not None else None
    old_meta = _obj_or_none(old, "metadata", uid) if old is not None else None
    name = _str(req, "name", uid, "request.name") or _meta_str(new_meta, "name", uid) or _meta_str(
        old_meta, "name", uid)
    update = operation == "UPDATE"
    return {
        "name": name,
        "new_annotations": _string_map(new_meta, "annotations", uid),
        "old_annotations": _string_map(old_meta, "annotations", uid),
        "new_labels": _string_map(new_meta, "labels", uid),
        "old_labels": _string_map(old_meta, "labels", uid),
        "object_uid": _meta_str(old_meta, "uid", uid) or _meta_str(new_meta, "uid", uid),
        "finalizer_removal_only": update and _only_removes_finalizers(old, new),
        "status_only": update and req.get("subResource") == "status" and _same_outside(old, new, "status"),
        "old_lease": _lease_state(old, uid, "oldObject") if resource == LEASES else None,
        "new_lease": _lease_state(new, uid, "object") if resource == LEASES else None,
    }


def _only_removes_finalizers(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """An update of an object being deleted that drops finalizers and changes nothing else.

    Such writes are how controllers let a deletion complete; refusing them
    would leave the object Terminating until the lock expires (or forever,
    for a lock that keeps being renewed).
    """
    if old is None or new is None:
        return False
    old_meta, new_meta = old.get("metadata"), new.get("metadata")
    if not isinstance(old_meta, dict) or not isinstance(new_meta, dict):
        return False
    if not old_meta.get("deletionTimestamp"):
        return False
    old_fin, new_fin = old_meta.get("finalizers") or [], new_meta.get("finalizers") or []
    if not isinstance(old_fin, list) or not isinstance(new_fin, list):
        return False
    if len(new_fin) >= len(old_fin) or not all(f in old_fin for f in new_fin):
        return False
    # Only now (rare: objects being deleted) compare the rest of the object.
    return _same_outside(old, new, "metadata.finalizers")


def _same_outside(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, skip: str) -> bool:
    """Whether ``old`` and ``new`` are equal but for ``skip`` (a top-level or ``metadata.`` field).

    Volatile metadata (resourceVersion, managedFields, generation) never counts.
    """
    if old is None or new is None:
        return False
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    if not isinstance(old_meta, dict) or not isinstance(new_meta, dict):
        return False
    skip_meta = _VOLATILE_METADATA | {skip.removeprefix("metadata.")}
    if any(old.get(k) != new.get(k) for k in old.keys() | new.keys() if k not in (skip, "metadata")):
        return False
    return all(old_meta.get(k) == new_meta.get(k) for k in old_meta.keys() | new_meta.keys()
               if k not in skip_meta)


def _lease_state(lease: Mapping[str, Any] | None, uid: str, where: str) -> LeaseState | None:
    if lease is None:
        return None
    try:
        return LeaseState.from_json(lease)
    except (ValueError, TypeError) as exc:
        raise ReviewError(400, f"{where} is not a valid Lease: {exc}", uid=uid) from exc


def build_response(
    uid: str,
    *,
    allowed: bool,
    code: int = 200,
    message: str = "",
    reason: str = "",
    warnings: Sequence[str] = (),
    audit_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview to send back (``uid`` echoed, as the protocol requires).

    >>> build_response("u1", allowed=False, code=409, message="locked", reason="Conflict")["response"]
    {'uid': 'u1', 'allowed': False, 'status': {'code': 409, 'message': 'locked', 'reason': 'Conflict'}}
    """
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if message or not allowed:
        status: dict[str, Any] = {"code": code, "message": message}
        if reason:
            status["reason"] = reason
        response["status"] = status
    if warnings:
        response["warnings"] = list(warnings)
    if audit_annotations:
        response["auditAnnotations"] = dict(audit_annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


# -- strict accessors: wrong types are a 400, not a crash ----------------------


def _short(value: object) -> str:
    return repr(value)[:80]


def _obj(parent: Mapping[str, Any], key: str, uid: str) -> Mapping[str, Any]:
    return _obj_or_none(parent, key, uid) or _EMPTY


def _obj_or_none(parent: Mapping[str, Any], key: str, uid: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReviewError(400, f"{key} must be an object or null", uid=uid)
    return value


def _str(parent: Mapping[str, Any], key: str, uid: str, where: str) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(400, f"{where} must be a string", uid=uid)
    return value


def _meta_str(meta: Mapping[str, Any] | None, key: str, uid: str) -> str:
    return _str(meta, key, uid, f"metadata.{key}") if meta is not None else ""


def _string_map(meta: Mapping[str, Any] | None, key: str, uid: str) -> Mapping[str, str]:
    if meta is None:
        return _EMPTY
    value = meta.get(key)
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ReviewError(400, f"metadata.{key} must map strings to strings", uid=uid)
    return value
