"""AdmissionReview parsing: typed requests from good reviews, ReviewError (4xx) from anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.admission import TXN_ANNOTATION
from tests.support.admission import review as sample_review
from webhook.review import ReviewError, build_response, parse_review

LIMIT = 1 << 20


# The shared sample is a core-group ConfigMap; these tests parse a named-group kind.
DEPLOYMENT_UPDATE: dict[str, Any] = {
    "uid": "u1",
    "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
    "name": "web",
    "object": {"metadata": {"name": "web", "annotations": {TXN_ANNOTATION: "t1"}}},
    "oldObject": {"metadata": {"name": "web", "uid": "abc"}},
}


def review(**request: Any) -> dict[str, Any]:
    return sample_review(**{**DEPLOYMENT_UPDATE, **request})


def parse(doc: Any, content_type: str = "application/json") -> Any:
    return parse_review(json.dumps(doc).encode(), content_type, max_body_bytes=LIMIT)


def test_parses_the_fields_the_decision_needs() -> None:
    r = parse(review())
    assert (r.uid, r.operation, r.group, r.kind, r.resource, r.namespace, r.name) == (
        "u1", "UPDATE", "apps", "Deployment", "deployments", "shop", "web")
    assert r.username == "bob" and r.groups == ("developers", "system:authenticated")
    assert r.new_annotations == {"leasegate.io/transaction": "t1"} and r.old_annotations == {}
    assert r.field_manager == "kubectl-edit" and r.object_uid == "abc" and not r.dry_run
    assert r.group_kind == "Deployment.apps" and r.api_version == "apps/v1"


def test_name_from_object_and_generate_name() -> None:
    assert parse(review(name=None)).name == "web"
    created = review(operation="CREATE", name=None, oldObject=None,
                     object={"metadata": {"generateName": "web-"}})
    assert parse(created).name == ""


def test_content_type_with_charset_is_fine() -> None:
    assert parse(review(), "application/json; charset=utf-8").uid == "u1"


def deleting(finalizers: list[str], **changes: Any) -> dict[str, Any]:
    meta = {"name": "web", "deletionTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "2",
            "finalizers": finalizers}
    meta.update(changes)
    return {"metadata": meta, "data": {"k": "v"}}


@pytest.mark.parametrize(("old", "new", "expected"), [
    (deleting(["a", "b"]), deleting(["a"], resourceVersion="3"), True),
    (deleting(["a"]), deleting([]), True),
    (deleting(["a"]), deleting(["a"]), False),  # nothing removed
    (deleting(["a"]), deleting([], labels={"x": "y"}), False),  # also changes labels
    (deleting(["a"]), {**deleting([]), "data": {"k": "w"}}, False),  # also changes data
    ({"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": []}}, False),  # not deleting
])
def test_finalizer_removal_only(old: Any, new: Any, expected: bool) -> None:
    assert parse(review(oldObject=old, object=new)).finalizer_removal_only is expected


@pytest.mark.parametrize(("body", "content_type", "status", "fragment"), [
    (b"not json", "application/json", 400, "not valid JSON"),
    (b"[1, 2]", "application/json", 400, "JSON object"),
    (b"{}", "text/plain", 415, "content type"),
    (b"{}", None, 415, "content type"),
    (json.dumps({"apiVersion": "v1", "kind": "AdmissionReview"}).encode(), "application/json", 400, "apiVersion"),
    (json.dumps({**review(), "kind": "Other"}).encode(), "application/json", 400, "kind"),
    (json.dumps({**review(), "request": None}).encode(), "application/json", 400, "no request"),
    (json.dumps(review(uid=None)).encode(), "application/json", 400, "uid"),
    (json.dumps(review(uid=5)).encode(), "application/json", 400, "uid"),
    (json.dumps(review(operation="PATCH")).encode(), "application/json", 400, "operation"),
    (json.dumps(review(userInfo={"groups": "x"})).encode(), "application/json", 400, "groups"),
    (json.dumps(review(object={"metadata": {"annotations": {"a": 1}}})).encode(), "application/json", 400,
     "annotations"),
    (json.dumps(review(dryRun="yes")).encode(), "application/json", 400, "dryRun"),
    (json.dumps(review(kind="Deployment")).encode(), "application/json", 400, "kind must be an object"),
    (json.dumps(review(object=[])).encode(), "application/json", 400, "object must be an object"),
    (b" " * (LIMIT + 1), "application/json", 413, "exceeds"),
    (b"[" * 100000 + b"]" * 100000, "application/json", 400, "JSON"),
])
def test_malformed_input_is_a_clear_4xx(body: bytes, content_type: str | None, status: int,
                                        fragment: str) -> None:
    with pytest.raises(ReviewError) as err:
        parse_review(body, content_type, max_body_bytes=LIMIT)
    assert err.value.status == status and fragment in err.value.message


def test_response_echoes_uid_and_carries_everything() -> None:
    out = build_response("u1", allowed=True, warnings=["w"], audit_annotations={"decision": "warn"})
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"] == {"uid": "u1", "allowed": True, "warnings": ["w"],
                               "auditAnnotations": {"decision": "warn"}}
    assert "status" not in build_response("u1", allowed=True)["response"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1500)
@given(mutations=st.dictionaries(
    st.sampled_from(["uid", "operation", "kind", "resource", "namespace", "name", "userInfo", "object",
                     "oldObject", "options", "dryRun", "subResource"]), _json, max_size=5))
def test_mutated_reviews_parse_or_raise_review_error(mutations: dict[str, Any]) -> None:
    try:
        parse(review(**mutations))
    except ReviewError as err:
        assert 400 <= err.status < 500 and err.message


@settings(max_examples=500)
@given(raw=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bodies_parse_or_raise_review_error(raw: bytes) -> None:
    try:
        parse_review(raw, "application/json", max_body_bytes=LIMIT)
    except ReviewError as err:
        assert 400 <= err.status < 500
