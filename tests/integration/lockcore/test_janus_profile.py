"""Interoperation with Leases written by the janus Go operator (Profile.JANUS)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client

from lockcore.errors import AlreadyLockedError
from lockcore.lease import format_micro_time
from lockcore.manager import LeaseManager
from lockcore.naming import ResourceKey
from lockcore.settings import Profile
from tests.support.cluster import ApiClientFactory

pytestmark = pytest.mark.integration


def janus_lease(namespace: str, kind: str, name: str, txn: str, seconds: int, age: float = 0) -> client.V1Lease:
    """A Lease exactly as the janus operator writes it: no leasegate labels or annotations."""
    renewed = datetime.now(timezone.utc) - timedelta(seconds=age)
    return client.V1Lease.from_dict(
        {
            "metadata": {
                "name": f"janus-lock-{namespace}-{kind}-{name}".lower(),
                "namespace": namespace,
                "labels": {"janus.io/transaction": txn},
            },
            "spec": {
                "holderIdentity": txn,
                "leaseDurationSeconds": seconds,
                "acquireTime": format_micro_time(renewed),
                "renewTime": format_micro_time(renewed),
            },
        }
    )


def test_janus_leases_are_respected_listed_released_and_taken_over(
    manager: Callable[..., LeaseManager], namespace: str, api_client: ApiClientFactory
) -> None:
    leases = client.CoordinationV1Api(api_client("admin"))
    leases.create_namespaced_lease(namespace, janus_lease(namespace, "Deployment", "Web", "jtx", 60))
    leases.create_namespaced_lease(namespace, janus_lease(namespace, "ConfigMap", "old", "gone", 1, age=30))
    m = manager(profile=Profile.JANUS)
    web = ResourceKey(group="apps", kind="Deployment", namespace=namespace, name="Web")
    assert m.ref_for(web).name == f"janus-lock-{namespace}-deployment-web"

    with pytest.raises(AlreadyLockedError) as held:
        m.acquire(web, "ours", 30)
    assert held.value.holder == "jtx"
    assert [s.name for s in m.list_locks("jtx", namespace=namespace)] == [m.ref_for(web).name]
    m.renew(m.ref_for(web), "jtx", 30)  # a janus transaction can be extended from Python

    stale = ResourceKey(group="", kind="ConfigMap", namespace=namespace, name="old")
    ref = m.acquire(stale, "ours", 30)  # the expired janus lock is taken over
    ours = leases.read_namespaced_lease(ref.name, namespace)
    assert ours.spec.holder_identity == "ours"
    assert ours.metadata.labels["janus.io/transaction"] == "ours"

    m.release(m.ref_for(web), "jtx")
    assert [s.name for s in m.list_locks(namespace=namespace)] == [ref.name]


def test_locks_we_take_have_the_janus_shape(
    manager: Callable[..., LeaseManager], namespace: str, api_client: ApiClientFactory
) -> None:
    m = manager(profile=Profile.JANUS)
    key = ResourceKey(group="", kind="Secret", namespace=namespace, name="db")
    ref = m.acquire(key, "t9", 30)
    lease = client.CoordinationV1Api(api_client("admin")).read_namespaced_lease(ref.name, namespace)
    assert lease.metadata.name == f"janus-lock-{namespace}-secret-db"
    assert lease.metadata.labels["janus.io/transaction"] == "t9"
    assert lease.spec.holder_identity == "t9"
    assert lease.spec.lease_duration_seconds == 30
    assert lease.spec.acquire_time is not None and lease.spec.renew_time is not None
