"""lockcore refuses bad input with a clear error before any API call, and RBAC is the real boundary.

Invalid names, namespaces, transactions and timeouts raise
``InvalidKeyError``/``ValueError`` naming the bad value, with zero HTTP
requests made (counted on the wire by CountingApiClient). A user without
Lease permissions (bob) can neither take, renew, release nor force-release a
lock: the API server refuses, lockcore says so, and the holder's Lease is intact.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from lockcore.errors import LeaseOpError
from lockcore.manager import LeaseManager
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey, validate_txn
from lockcore.settings import LockSettings
from tests.support.cluster import KubectlRunner
from tests.support.figures import Figures
from tests.support.locking import CountingApiClient, CountingFactory

pytestmark = pytest.mark.integration

BAD_TXNS = ["", "-t", "t-", "has space", "a/b", "x" * 64, "t\n", "ünï", "t;rm -rf"]
BAD_TIMEOUTS = [0, -1, float("nan"), float("inf"), 10**9]


@pytest.fixture
def fresh(counting_client: CountingFactory, namespace: str) -> LeaseManager:
    """No principal given: even the one-off SelfSubjectReview would count as a call."""
    return LeaseManager(counting_client(), LockSettings(lock_namespace=namespace))


def calls(manager: LeaseManager) -> int:
    assert isinstance(manager.api_client, CountingApiClient)
    return len(manager.api_client.calls)


@pytest.mark.parametrize(("group", "kind", "ns", "name", "fragment"), [
    ("", "ConfigMap", "Bad_NS", "x", "namespace"),
    ("", "ConfigMap", "x" * 64, "x", "namespace"),
    ("", "ConfigMap", "shop\n", "x", "namespace"),  # `$` alone would accept a trailing newline
    ("apps\n", "Deployment", "shop", "x", "group"),
    ("", "ConfigMap\n", "shop", "x", "kind"),
    ("", "Config Map", "shop", "x", "kind"),
    ("", "", "shop", "x", "kind"),
    ("Bad Group", "ConfigMap", "shop", "x", "group"),
    ("", "ConfigMap", "shop", "", "name"),
    ("", "ConfigMap", "shop", "a/b", "name"),
    ("", "ConfigMap", "shop", "..", "name"),
    ("", "ConfigMap", "shop", "x" * 254, "name"),
])
def test_invalid_keys_are_refused_by_construction(group: str, kind: str, ns: str, name: str,
                                                  fragment: str) -> None:
    with pytest.raises(InvalidKeyError, match=fragment):
        ResourceKey(group=group, kind=kind, namespace=ns, name=name)


def test_bad_input_makes_no_api_call(fresh: LeaseManager, namespace: str, figures: Figures) -> None:
    key = ResourceKey(group="", kind="ConfigMap", namespace=namespace, name="cfg")
    ref = fresh.ref_for(key)
    tried = 0
    for txn in BAD_TXNS:
        for call in (lambda: fresh.acquire(key, txn, 30), lambda: fresh.renew(ref, txn, 30),
                     lambda: fresh.release(ref, txn), lambda: fresh.release_all([ref], txn),
                     lambda: fresh.list_locks(txn)):
            with pytest.raises(InvalidKeyError, match="transaction name"):
                call()
            tried += 1
    for timeout in BAD_TIMEOUTS:
        for call in (lambda: fresh.acquire(key, "t1", timeout), lambda: fresh.renew(ref, "t1", timeout)):
            with pytest.raises(ValueError, match="timeout"):
                call()
            tried += 1
    with pytest.raises(ValueError, match="wait"):
        fresh.acquire(key, "t1", 30, wait=-1)
    for not_a_key in ({"namespace": namespace, "name": "cfg"}, "cfg", None):
        with pytest.raises(InvalidKeyError):
            fresh.acquire(not_a_key, "t1", 30)  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            fresh.release(not_a_key, "t1")  # type: ignore[arg-type]
        tried += 2
    for bad_ref in (("Bad_NS", "x"), ("shop", "UPPER"), ("shop", "a" * 254), ("", "x"), ("shop\n", "x"),
                    ("shop", "x\n")):
        with pytest.raises(InvalidKeyError):
            LeaseRef(*bad_ref)
    assert calls(fresh) == 0
    figures(f"{tried + 1} invalid lockcore calls refused, 0 API requests made")


@settings(max_examples=300, suppress_health_check=list(HealthCheck), database=None)
@given(txn=st.text(max_size=70))
def test_any_txn_the_validator_refuses_never_reaches_the_api(fresh: LeaseManager, namespace: str,
                                                              txn: str) -> None:
    try:
        validate_txn(txn)
        return
    except InvalidKeyError:
        pass
    with pytest.raises(InvalidKeyError):
        fresh.acquire(ResourceKey("", "ConfigMap", namespace, "cfg"), txn, 30)
    assert calls(fresh) == 0


def test_user_without_lease_rights_cannot_take_or_release(
    counting_client: CountingFactory, namespace: str, kubectl: KubectlRunner
) -> None:
    for verb in ("create", "update", "patch", "delete", "get"):
        assert kubectl("auth", "can-i", verb, "leases.coordination.k8s.io", "-n", namespace,
                       user="bob", check=False).stdout.strip() == "no"
    settings_ = LockSettings(lock_namespace=namespace)
    admin = LeaseManager(counting_client("admin"), settings_)
    bob = LeaseManager(counting_client("bob"), settings_)
    key = ResourceKey(group="", kind="ConfigMap", namespace=namespace, name="cfg")
    other = ResourceKey(group="", kind="ConfigMap", namespace=namespace, name="free")
    ref = admin.acquire(key, "admins-txn", 60)

    def forbidden(call: object) -> None:
        assert callable(call)
        with pytest.raises(LeaseOpError) as info:
            call()
        cause = info.value.__cause__
        assert isinstance(cause, ApiException) and cause.status == 403, cause

    forbidden(lambda: bob.acquire(other, "bobs-txn", 60))
    forbidden(lambda: bob.acquire(key, "bobs-txn", 60))
    forbidden(lambda: bob.renew(ref, "admins-txn", 60))
    forbidden(lambda: bob.release(ref, "admins-txn"))
    forbidden(lambda: bob.force_release(ref))
    state = admin.get_lock(ref)
    assert state is not None and state.holder == "admins-txn"
    assert admin.get_lock(admin.ref_for(other)) is None
