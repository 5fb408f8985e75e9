"""Property-based fuzzing of the AdmissionReview parser + decision through the real app.

Three generators, 10,500 requests in all (plus the atheris run in
test_atheris.py): structured reviews whose every field may have a wrong type
or value, mutations of a valid review (a field deleted, replaced by arbitrary
JSON, or blown up), and raw bytes with arbitrary content types. The harness
asserts, for each, a 4xx equal to the parser's typed error or a well-formed
AdmissionReview agreeing with ``decide`` -- zero 5xx, zero exceptions.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.admission import TXN_ANNOTATION, review
from tests.support.figures import Figures
from tests.support.fuzzing import LOOKUPS, MAX_BODY, Harness, to_body

HARNESS = Harness()
FUZZ = settings(max_examples=2000, suppress_health_check=list(HealthCheck),
                database=None)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
lookups = st.sampled_from(sorted(LOOKUPS))


def maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, one time in eight anything at all (so whole reviews often parse)."""
    return st.integers(0, 7).flatmap(lambda pick: json_values if pick == 0 else good)


names = st.sampled_from(["cfg", "web", "a.b", "UPPER", "", "x" * 300, "../x", "a/b", "%"]) | st.text(max_size=20)
txns = st.sampled_from(["t1", "t2", "", "not a txn!", "x" * 70, "t1\n", "😀"]) | st.text(max_size=10)
annotations = st.dictionaries(st.sampled_from([TXN_ANNOTATION, "other", ""]), maybe(txns), max_size=3)
metadata = st.fixed_dictionaries({}, optional={
    "name": maybe(names), "uid": maybe(st.text(max_size=8)), "annotations": maybe(annotations),
    "generateName": maybe(st.just("web-")), "deletionTimestamp": maybe(st.just("2026-01-01T00:00:00Z")),
    "finalizers": maybe(st.lists(st.sampled_from(["a", "b"]), max_size=2)),
})
objects = st.none() | st.fixed_dictionaries({"metadata": maybe(metadata)}, optional={"data": json_values})
requests = st.fixed_dictionaries({
    "uid": maybe(st.text(min_size=1, max_size=12)),
    "operation": maybe(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH", "create", ""])),
    "kind": maybe(st.fixed_dictionaries({
        "group": maybe(st.sampled_from(["", "apps", "coordination.k8s.io", "Bad Group"])),
        "version": maybe(st.just("v1")),
        "kind": maybe(st.sampled_from(["ConfigMap", "Deployment", "Lease", "Scale", "", "9bad"]))})),
    "resource": maybe(st.fixed_dictionaries({
        "group": maybe(st.sampled_from(["", "apps", "coordination.k8s.io"])),
        "resource": maybe(st.sampled_from(["configmaps", "deployments", "leases"]))})),
    "namespace": maybe(st.sampled_from(["shop", "", "kube-system", "Bad_NS", "x" * 70])),
    "userInfo": maybe(st.fixed_dictionaries({"username": maybe(st.sampled_from(["alice", "bob", ""])),
                                             "groups": maybe(st.lists(st.text(max_size=10), max_size=3))})),
}, optional={
    "name": maybe(names), "subResource": maybe(st.sampled_from(["", "status", "scale", "exec"])),
    "object": maybe(objects), "oldObject": maybe(objects), "dryRun": maybe(st.booleans()),
    "options": maybe(st.fixed_dictionaries({}, optional={"fieldManager": maybe(st.text(max_size=10))})),
})
envelopes = st.fixed_dictionaries({
    "apiVersion": maybe(st.just("admission.k8s.io/v1")),
    "kind": maybe(st.just("AdmissionReview")),
    "request": maybe(requests),
})

PATHS: list[tuple[str, ...]] = [
    ("apiVersion",), ("kind",), ("request",), ("request", "uid"), ("request", "operation"),
    ("request", "kind"), ("request", "kind", "kind"), ("request", "kind", "group"), ("request", "resource"),
    ("request", "name"), ("request", "namespace"), ("request", "userInfo"), ("request", "userInfo", "groups"),
    ("request", "object"), ("request", "object", "metadata"),
    ("request", "object", "metadata", "annotations"),
    ("request", "object", "metadata", "annotations", TXN_ANNOTATION),
    ("request", "oldObject"), ("request", "oldObject", "metadata", "annotations"),
    ("request", "dryRun"), ("request", "options"), ("request", "subResource"),
]
mutations = st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(["delete", "replace", "huge"]),
                               json_values), min_size=1, max_size=4)


def mutate(doc: dict[str, Any], path: tuple[str, ...], how: str, value: Any) -> None:
    parent: Any = doc
    for part in path[:-1]:
        if not isinstance(parent, dict):
            return
        parent = parent.setdefault(part, {})
    if not isinstance(parent, dict):
        return
    if how == "delete":
        parent.pop(path[-1], None)
    elif how == "huge":
        parent[path[-1]] = "t" * 70_000 if path[-1] != "annotations" else {TXN_ANNOTATION: "t" * 70_000}
    else:
        parent[path[-1]] = value


@FUZZ
@given(doc=envelopes, lookup=lookups)
def test_generated_reviews(doc: dict[str, Any], lookup: str) -> None:
    HARNESS.check(to_body(doc), lookup=lookup)


@FUZZ
@given(changes=mutations, lookup=lookups, operation=st.sampled_from(["CREATE", "UPDATE", "DELETE"]))
def test_mutated_reviews(changes: list[tuple[tuple[str, ...], str, Any]], lookup: str, operation: str) -> None:
    doc = review(operation=operation)
    for path, how, value in changes:
        mutate(doc, path, how, value)
    HARNESS.check(to_body(doc), lookup=lookup)


@settings(FUZZ, max_examples=2000)
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       content_type=st.none() | st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                 "text/plain", "application/x-www-form-urlencoded",
                                                 "APPLICATION/JSON", ""])
       # A header value cannot carry CR/LF on the wire (the HTTP client refuses to send it).
       | st.text(max_size=30).filter(lambda t: "\r" not in t and "\n" not in t))
def test_raw_bytes(raw: bytes, content_type: str | None) -> None:
    HARNESS.check(raw, content_type)


@pytest.mark.parametrize("size", [MAX_BODY + 1, 4 * MAX_BODY])
def test_oversized_bodies_are_413(size: int) -> None:
    doc = review()
    doc["request"]["object"]["data"] = {"big": "x" * size}
    HARNESS.check(to_body(doc))
    assert HARNESS.outcomes["http-413"] >= 1


def test_zz_totals(figures: Figures) -> None:
    """Runs last in this module: the fuzz volume is real and every outcome occurred."""
    total = sum(HARNESS.outcomes.values())
    figures(f"{total} fuzzed admission requests through the app: {dict(sorted(HARNESS.outcomes.items()))}; "
            "0 exceptions, 0 5xx")
    if total < 6_000:
        pytest.skip(f"only {total} requests (module run partially)")
    for outcome in ("allowed", "denied", "http-400", "http-413", "http-415"):
        assert HARNESS.outcomes[outcome] > 0, f"no {outcome} outcome: the generators miss a class"
