"""LeaseManager against the real kube-apiserver: every race and rule of issue 3."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.errors import AlreadyLockedError, LeaseOpError, LockExpiredError
from lockcore.lease import PRINCIPAL_ANNOTATION, LeaseState
from lockcore.manager import LeaseManager
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey
from lockcore.settings import LockSettings
from tests.support.cluster import ApiClientFactory
from tests.support.locking import CountingApiClient, CountingFactory, grant_leases

pytestmark = pytest.mark.integration

ManagerFactory = Callable[..., LeaseManager]


def deploy(namespace: str, name: str = "web") -> ResourceKey:
    return ResourceKey(group="apps", kind="Deployment", namespace=namespace, name=name)


def counted(manager: LeaseManager) -> CountingApiClient:
    assert isinstance(manager.api_client, CountingApiClient)
    return manager.api_client


def read_lease(api_client: ApiClientFactory, ref: LeaseRef) -> client.V1Lease:
    return client.CoordinationV1Api(api_client("admin")).read_namespaced_lease(ref.name, ref.namespace)


def test_api_call_counts_acquire_renew_release(manager: ManagerFactory, namespace: str) -> None:
    m = manager()
    m.principal()  # the one-off SelfSubjectReview, outside the per-operation counts
    api = counted(m)
    for i, name in enumerate(("a", "b", "c")):
        api.reset()
        ref = m.acquire(deploy(namespace, name), "t1", 30)
        calls = api.methods()
        # The discovery documents are read once per manager (GETs before the first stamp), and
        # the reservation probe once per namespace no reservation policy judges (none here).
        assert calls[0] == "POST" and calls[-2:] == (["PATCH", "POST"] if i == 0 else ["POST", "PATCH"])[-2:]
        assert set(calls[1:-2]) <= {"GET"}
        assert i == 0 or calls == ["POST", "PATCH"], "uncontended acquire is one create and one stamp"
        api.reset()
        m.renew(ref, "t1", 30)
        assert api.methods() == ["PATCH"], "renew is one JSON patch"
        api.reset()
        m.release(ref, "t1")
        assert api.methods() == ["DELETE", "PATCH"], "release is the delete, then the marker's removal"
        assert m.get_lock(ref) is None


def test_renew_and_release_without_cached_state(manager: ManagerFactory, namespace: str) -> None:
    ref = manager().acquire(deploy(namespace), "t1", 30)
    fresh = manager()
    api = counted(fresh)
    fresh.renew(ref, "t1", 30)
    assert api.methods() == ["GET", "PATCH"]
    other = manager()
    api = counted(other)
    other.release(ref, "t1")
    calls = api.methods()
    # GET, DELETE, the discovery documents, the marker's removal, and (first time in a
    # namespace no reservation policy judges) the probe.
    assert calls[:2] == ["GET", "DELETE"] and calls[-2:] == ["PATCH", "POST"] and set(calls[2:-2]) <= {"GET"}
    assert other.get_lock(ref) is None


def test_twenty_threads_race_one_key_exactly_one_wins_each_of_200_rounds(
    counting_client: CountingFactory, settings: LockSettings, namespace: str
) -> None:
    threads, rounds = 20, 200
    api = counting_client(pool=threads)
    managers = [LeaseManager(api, settings, principal="admin") for _ in range(threads)]
    barrier = threading.Barrier(threads)
    winners: list[list[str]] = [[] for _ in range(rounds)]
    refused: list[list[str]] = [[] for _ in range(rounds)]
    failures: list[BaseException] = []

    def run(i: int) -> None:
        txn = f"t{i}"
        try:
            for r in range(rounds):
                barrier.wait(timeout=30)
                try:
                    managers[i].acquire(deploy(namespace, f"r{r}"), txn, 60)
                    winners[r].append(txn)
                except AlreadyLockedError as exc:
                    refused[r].append(exc.holder)
        except BaseException as exc:  # surfaced below; a dead thread must fail the test
            failures.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, failures[0]
    for r in range(rounds):
        assert len(winners[r]) == 1, f"round {r}: winners {winners[r]}"
        assert refused[r] == [winners[r][0]] * (threads - 1), f"round {r}"
    holders = {s.name: s.holder for s in managers[0].list_locks(namespace=namespace)}
    assert holders == {f"lg.deployment.r{r}.apps": winners[r][0] for r in range(rounds)}


def test_two_takers_of_one_expired_lease_exactly_one_wins(
    manager: ManagerFactory, namespace: str
) -> None:
    keys = [deploy(namespace, f"k{i}") for i in range(15)]
    old = manager()
    for key in keys:
        old.acquire(key, "old", 1)
    time.sleep(1.3)  # 1 s lease + 0.2 s skew margin
    takers = [manager(), manager()]
    for key in keys:
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}

        def take(m: LeaseManager, txn: str) -> None:
            barrier.wait(timeout=10)
            try:
                m.acquire(key, txn, 30)
                results[txn] = "won"
            except AlreadyLockedError as exc:
                results[txn] = f"refused:{exc.holder}"

        ts = [threading.Thread(target=take, args=(m, t)) for m, t in zip(takers, ("A", "B"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        won = [t for t, r in results.items() if r == "won"]
        assert len(won) == 1, results
        loser = "B" if won == ["A"] else "A"
        assert results[loser] == f"refused:{won[0]}"
        state = takers[0].get_lock(takers[0].ref_for(key))
        assert state is not None and state.holder == won[0]


def test_release_after_takeover_leaves_new_holder_intact(
    manager: ManagerFactory, namespace: str, api_client: ApiClientFactory
) -> None:
    a, b = manager(), manager()
    ref = a.acquire(deploy(namespace), "A", 1)
    time.sleep(1.3)
    b.acquire(deploy(namespace), "B", 30)
    before = read_lease(api_client, ref)
    api = counted(a)
    api.reset()
    a.release(ref, "A")  # A's cached view is stale: the precondition must save B's lease
    assert len(api.methods()) <= 2
    after = read_lease(api_client, ref)
    assert after.spec.holder_identity == "B"
    assert after.metadata.uid == before.metadata.uid
    assert after.metadata.resource_version == before.metadata.resource_version


def test_live_foreign_lock_refuses_with_holder_and_remaining_time(
    manager: ManagerFactory, namespace: str
) -> None:
    manager().acquire(deploy(namespace), "A", 30)
    with pytest.raises(AlreadyLockedError) as refused:
        manager().acquire(deploy(namespace), "B", 30)
    assert refused.value.holder == "A"
    assert refused.value.lease_name == "lg.deployment.web.apps"
    assert refused.value.namespace == namespace
    assert refused.value.expires_in_seconds is not None and 28 < refused.value.expires_in_seconds <= 30.2


def test_same_txn_acquire_renews_and_keeps_acquire_time(
    manager: ManagerFactory, namespace: str, api_client: ApiClientFactory
) -> None:
    ref = manager().acquire(deploy(namespace), "A", 5)
    first = read_lease(api_client, ref)
    again = manager().acquire(deploy(namespace), "A", 20)
    assert again == ref
    second = read_lease(api_client, ref)
    assert second.spec.lease_duration_seconds == 20
    assert second.spec.acquire_time == first.spec.acquire_time
    assert second.spec.renew_time > first.spec.renew_time


def test_renew_of_expired_foreign_and_missing_leases(manager: ManagerFactory, namespace: str) -> None:
    a = manager()
    ref = a.acquire(deploy(namespace), "A", 1)
    time.sleep(1.1)
    with pytest.raises(LockExpiredError) as expired:
        a.renew(ref, "A", 10)
    assert expired.value.lease_name == ref.name
    time.sleep(0.2)  # past the skew margin, so B may take it over
    manager().acquire(deploy(namespace), "B", 30)
    with pytest.raises(AlreadyLockedError) as foreign:
        a.renew(ref, "A", 10)
    assert foreign.value.holder == "B"
    manager().force_release(ref)
    with pytest.raises(LockExpiredError):
        a.renew(ref, "A", 10)


def test_renew_is_refused_after_takeover_even_with_cached_state(
    manager: ManagerFactory, namespace: str
) -> None:
    a = manager()
    ref = a.acquire(deploy(namespace), "A", 1)
    time.sleep(1.3)
    manager().acquire(deploy(namespace), "B", 30)
    with pytest.raises(AlreadyLockedError):
        a.renew(ref, "A", 30)
    state = a.get_lock(ref)
    assert state is not None and state.holder == "B"


def test_fractional_and_invalid_timeouts(
    manager: ManagerFactory, namespace: str, api_client: ApiClientFactory
) -> None:
    m = manager()
    m.principal()
    ref = m.acquire(deploy(namespace, "frac"), "A", 0.2)
    assert read_lease(api_client, ref).spec.lease_duration_seconds == 1
    m.renew(ref, "A", timedelta(seconds=1.5))
    assert read_lease(api_client, ref).spec.lease_duration_seconds == 2
    api = counted(m)
    api.reset()
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            m.acquire(deploy(namespace, "frac2"), "A", bad)
        with pytest.raises(ValueError):
            m.renew(ref, "A", bad)
    with pytest.raises(InvalidKeyError):
        m.acquire(deploy(namespace, "x"), "bad txn!", 10)
    with pytest.raises(InvalidKeyError):
        m.release(ref, "")
    assert api.methods() == [], "invalid input must be refused before any API call"


def test_cluster_scoped_key_lands_in_lock_namespace(manager: ManagerFactory, namespace: str) -> None:
    key = ResourceKey(group="", kind="Namespace", namespace="", name="shop")
    ref = manager().acquire(key, "A", 10)
    assert ref == LeaseRef(namespace=namespace, name="lgc.namespace.shop")
    state = manager().get_lock(ref)
    assert state is not None and state.resource == key and state.namespace == namespace


def test_holder_principal_is_the_callers_username(
    counting_client: CountingFactory, settings: LockSettings, namespace: str,
    api_client: ApiClientFactory,
) -> None:
    grant_leases(api_client, namespace, "alice")
    ref = LeaseManager(counting_client("alice"), settings).acquire(deploy(namespace), "A", 10)
    lease = read_lease(api_client, ref)
    assert lease.metadata.annotations[PRINCIPAL_ANNOTATION] == "alice"


def test_user_without_lease_rbac_gets_403(manager: ManagerFactory, namespace: str) -> None:
    bob = manager("bob")
    with pytest.raises(LeaseOpError) as denied:
        bob.acquire(deploy(namespace), "A", 10)
    assert denied.value.status == 403
    assert denied.value.op == "creating"
    assert isinstance(denied.value.__cause__, ApiException)
    assert bob.principal() == "bob"


def test_release_all_tries_every_lease_then_raises_first_error(
    counting_client: CountingFactory, settings: LockSettings, namespace: str,
    api_client: ApiClientFactory,
) -> None:
    grant_leases(api_client, namespace, "alice")
    alice = LeaseManager(counting_client("alice"), settings)
    mine = alice.acquire(deploy(namespace, "mine"), "A", 30)
    forbidden = LeaseRef(namespace="kube-system", name="lg.deployment.x.apps")
    with pytest.raises(LeaseOpError) as first:
        alice.release_all([forbidden, mine], "A")
    assert first.value.status == 403 and first.value.namespace == "kube-system"
    assert alice.get_lock(mine) is None


def test_release_is_noop_when_gone_or_foreign(manager: ManagerFactory, namespace: str) -> None:
    m = manager()
    ref = m.acquire(deploy(namespace), "A", 30)
    m.release(ref, "B")
    state = m.get_lock(ref)
    assert state is not None and state.holder == "A"
    m.release(ref, "A")
    m.release(ref, "A")
    assert m.get_lock(ref) is None


def test_wait_acquires_once_the_holder_expires(manager: ManagerFactory, namespace: str) -> None:
    manager().acquire(deploy(namespace), "A", 1)
    waiter = manager()
    with pytest.raises(AlreadyLockedError):
        waiter.acquire(deploy(namespace), "B", 10, wait=0.3)
    started = time.monotonic()
    waiter.acquire(deploy(namespace), "B", 10, wait=5)
    assert time.monotonic() - started < 3
    state = waiter.get_lock(waiter.ref_for(deploy(namespace)))
    assert state is not None and state.holder == "B"


def test_list_locks_by_txn_and_force_release(manager: ManagerFactory, namespace: str) -> None:
    m = manager()
    refs = [m.acquire(deploy(namespace, n), "A", 30) for n in ("a", "b")]
    m.acquire(deploy(namespace, "c"), "B", 30)
    listed = m.list_locks("A", namespace=namespace)
    assert [(s.name, s.holder) for s in listed] == [(r.name, "A") for r in refs]
    assert all(isinstance(s, LeaseState) and s.resource is not None for s in listed)
    assert {s.holder for s in m.list_locks(namespace=namespace)} == {"A", "B"}
    assert m.force_release(refs[0]) is True
    assert m.force_release(refs[0]) is False
    assert [s.name for s in m.list_locks("A", namespace=namespace)] == [refs[1].name]
