"""hold(): all-or-nothing acquisition, background renewal, loss reporting, on the real API server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from lockcore.errors import AlreadyLockedError, LockExpiredError
from lockcore.holding import LockLostError, hold
from lockcore.manager import LeaseManager
from lockcore.naming import ResourceKey

pytestmark = pytest.mark.integration


def cm(namespace: str, name: str) -> ResourceKey:
    return ResourceKey(group="", kind="ConfigMap", namespace=namespace, name=name)


def test_all_or_nothing_releases_what_was_taken(
    manager: Callable[..., LeaseManager], namespace: str
) -> None:
    other = manager()
    other.acquire(cm(namespace, "c"), "B", 30)
    m = manager()
    with pytest.raises(AlreadyLockedError):
        with hold(m, [cm(namespace, "c"), cm(namespace, "a"), cm(namespace, "b")], "A", 30):
            pytest.fail("must not enter the block")
    assert m.list_locks("A", namespace=namespace) == []
    with hold(m, [cm(namespace, "b"), cm(namespace, "a")], "A", 30) as held:
        assert [r.name for r in held.refs] == ["lg.configmap.a", "lg.configmap.b"]
        assert [s.holder for s in m.list_locks("A", namespace=namespace)] == ["A", "A"]
    assert m.list_locks("A", namespace=namespace) == []


def test_opposite_orders_do_not_deadlock(manager: Callable[..., LeaseManager], namespace: str) -> None:
    keys = [cm(namespace, "x"), cm(namespace, "y")]
    done: list[str] = []

    def txn(name: str, order: list[ResourceKey]) -> None:
        with hold(manager(), order, name, 10, wait=10):
            time.sleep(0.2)
        done.append(name)

    ts = [threading.Thread(target=txn, args=("A", keys)),
          threading.Thread(target=txn, args=("B", keys[::-1]))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=15)
    assert sorted(done) == ["A", "B"]


def test_renews_in_background_past_the_lease_duration(
    manager: Callable[..., LeaseManager], namespace: str
) -> None:
    m, rival = manager(), manager()
    with hold(m, [cm(namespace, "a")], "A", 2, renew_every=0.4) as held:
        first = m.get_lock(held.refs[0])
        time.sleep(2.6)  # longer than lease + skew: only renewal keeps it alive
        with pytest.raises(AlreadyLockedError):
            rival.acquire(cm(namespace, "a"), "B", 10)
        later = m.get_lock(held.refs[0])
        assert first is not None and later is not None and first.renew_time and later.renew_time
        assert later.renew_time > first.renew_time
        assert not held.lost.is_set()
    assert m.get_lock(held.refs[0]) is None


def test_signals_loss_when_force_released(manager: Callable[..., LeaseManager], namespace: str) -> None:
    m, operator = manager(), manager()
    seen: list[LockLostError] = []
    with pytest.raises(LockLostError) as raised:
        with hold(m, [cm(namespace, "a")], "A", 3, renew_every=0.2, on_lost=seen.append) as held:
            operator.force_release(held.refs[0])
            assert held.lost.wait(3), "loss must be signalled"
            with pytest.raises(LockLostError):
                held.check()
    assert len(seen) == 1 and isinstance(seen[0].cause, LockExpiredError)
    assert raised.value.lease == held.refs[0]
