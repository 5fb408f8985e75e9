"""What a well-formed answer to an AdmissionReview is, checked the same way everywhere.

Used by the parser/decision fuzz tests (in process) and by the tests that
post to the running HTTPS webhook.
"""

from __future__ import annotations

import copy
import json
from typing import Any

TXN_ANNOTATION = "leasegate.io/transaction"


def review(**request: Any) -> dict[str, Any]:
    """A valid AdmissionReview (UPDATE of a ConfigMap) with ``request`` fields replaced."""
    base: dict[str, Any] = {
        "uid": "u-1", "operation": "UPDATE",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "namespace": "shop", "name": "cfg",
        "userInfo": {"username": "bob", "groups": ["developers", "system:authenticated"]},
        "object": {"metadata": {"name": "cfg", "annotations": {TXN_ANNOTATION: "t1"}},
                   "data": {"k": "v"}},
        "oldObject": {"metadata": {"name": "cfg", "uid": "abc"}, "data": {"k": "old"}},
        "options": {"kind": "UpdateOptions", "fieldManager": "kubectl-edit"},
        "dryRun": False,
    }
    base.update(copy.deepcopy(request))
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": base}


def body(**request: Any) -> bytes:
    return json.dumps(review(**request)).encode()


def assert_well_formed(answer: Any, uid: str) -> dict[str, Any]:
    """An AdmissionReview response the API server accepts; returns its ``response``."""
    assert isinstance(answer, dict), answer
    assert answer.get("apiVersion") == "admission.k8s.io/v1" and answer.get("kind") == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == uid, f"uid not echoed: {response['uid']!r} != {uid!r}"
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        status = response["status"]
        assert status["code"] in (403, 503) and isinstance(status["message"], str) and status["message"]
    for warning in response.get("warnings", []):
        assert isinstance(warning, str)
    for key, value in (response.get("auditAnnotations") or {}).items():
        assert isinstance(key, str) and isinstance(value, str)
    json.dumps(answer)  # serialisable as sent
    return dict(response)
