"""webhook/leases.py without a cluster: a Lease source is built from the lookups section and the lock profile.

The cache's watch against a real API server: tests/integration/webhook/test_cached.py.
"""

from __future__ import annotations

from lockcore.kube import ALL_LEASES_PATH, lease_path
from lockcore.lease import LeaseState
from lockcore.naming import LeaseRef
from lockcore.profiles import LockProfile, Profile
from tests.support.apiserver import AnsweringApiServer
from webhook.apiserver import ApiServerError
from webhook.leases import CachedLeaseSource, ConsistentLeaseSource, make_lease_source
from webhook.outcome import ABSENT, LookupFailed
from webhook.settings import LeaseLookup, Lookups

LEASEGATE, JANUS = LockProfile.of(Profile.LEASEGATE), LockProfile.of(Profile.JANUS)
REF = LeaseRef("shop", "lg.configmap.cfg")


def lease_json(namespace: str, name: str, holder: str, label: str) -> dict[str, object]:
    return {"metadata": {"namespace": namespace, "name": name, "labels": {label: holder}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60}}


def test_the_lookups_section_chooses_the_source() -> None:
    api = AnsweringApiServer()
    assert isinstance(make_lease_source(Lookups(), LEASEGATE, api), CachedLeaseSource)
    consistent = make_lease_source(Lookups(lease_lookup=LeaseLookup.CONSISTENT), LEASEGATE, api)
    assert isinstance(consistent, ConsistentLeaseSource)
    assert api.calls == []  # nothing is read before a lookup (the cache starts lazily)


def test_a_lookup_is_one_get_bounded_by_the_lookup_timeout() -> None:
    path = lease_path(REF.namespace, REF.name)
    api = AnsweringApiServer({path: (200, lease_json("shop", REF.name, "t1", LEASEGATE.txn_label))})
    source = ConsistentLeaseSource(api, Lookups(lookup_timeout_seconds=0.7), LEASEGATE)
    found = source.lookup(REF)
    assert isinstance(found, LeaseState) and found.holder == "t1"
    assert [(c.path, c.timeout) for c in api.calls] == [(path, 0.7)]
    assert source.lookup(LeaseRef("shop", "other")) is ABSENT


def test_a_failed_or_malformed_read_is_a_lookup_failure_never_an_exception() -> None:
    path = lease_path(REF.namespace, REF.name)
    for answer, says in [(ApiServerError(path, None, "timed out"), "timed out"),
                         ((500, {"message": "etcd down"}), "HTTP 500 etcd down"),
                         ((200, {"spec": {"leaseDurationSeconds": "soon"}}), "malformed")]:
        found = ConsistentLeaseSource(AnsweringApiServer({path: answer}), Lookups(), LEASEGATE).lookup(REF)
        assert isinstance(found, LookupFailed) and says in found.error, found


def test_a_target_is_found_by_the_profiles_label_and_name_scheme() -> None:
    label = JANUS.txn_label
    items = [lease_json("ops", "janus-lock-ops-clusterrole-edit", "t1", label),
             lease_json("dev", "janus-lock-dev-clusterrole-edit", "t2", label),
             lease_json("dev", "janus-lock-dev-clusterrole-view", "t3", label)]
    api = AnsweringApiServer({ALL_LEASES_PATH: (200, {"items": items, "metadata": {}})})
    found = ConsistentLeaseSource(api, Lookups(lookup_timeout_seconds=1.5), JANUS).lookup_target("clusterrole-edit")
    assert not isinstance(found, LookupFailed)
    assert sorted(state.holder for state in found) == ["t1", "t2"]
    (call,) = api.calls
    assert call.timeout == 1.5 and call.query is not None and call.query["labelSelector"] == label
