"""The expiry rule, timeout conversion and the Lease layout (lockcore.lease)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lockcore.lease import LeaseState, lease_body, lease_seconds
from lockcore.members import MEMBERS_ANNOTATION, Members
from lockcore.naming import ResourceKey
from lockcore.profiles import Profile


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [(0.2, 1), (1, 1), (1.0001, 2), (1.5, 2), (600, 600), (timedelta(minutes=10), 600),
     (timedelta(milliseconds=1), 1)],
)
def test_lease_seconds_rounds_up(timeout: float | timedelta, seconds: int) -> None:
    assert lease_seconds(timeout) == seconds


@pytest.mark.parametrize("timeout", [0, -1, -0.5, float("nan"), float("inf"), timedelta(0), 8 * 24 * 3600])
def test_lease_seconds_rejects(timeout: float | timedelta) -> None:
    with pytest.raises(ValueError):
        lease_seconds(timeout)


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("after", "skew", "live"),
    [(0, 0, True), (9.99, 0, True), (10, 0, False), (11, 2, True), (11.99, 2, True), (12, 2, False)],
)
def test_expiry_is_renew_time_plus_duration_plus_skew(after: float, skew: float, live: bool) -> None:
    state = LeaseState(holder="t1", renew_time=T0, duration_seconds=10)
    assert state.is_live(T0 + timedelta(seconds=after), skew_seconds=skew) is live


def test_leases_without_holder_or_times_lock_nothing() -> None:
    assert not LeaseState(holder="", renew_time=T0, duration_seconds=10).is_live(T0, 0)
    assert not LeaseState(holder="t", renew_time=None, duration_seconds=10).is_live(T0, 0)
    assert not LeaseState(holder="t", renew_time=T0, duration_seconds=None).is_live(T0, 0)


@pytest.mark.parametrize(("annotation", "members"), [
    (None, None),
    ('{"groups":["sre"],"users":["alice"],"version":1}', Members(users=("alice",), groups=("sre",))),
    ("garbage", Members.unreadable()),  # fail closed: a member-bound lock nobody is a member of
])
def test_lease_state_reads_members_with_the_same_parser(annotation: str | None, members: Members | None) -> None:
    obj = {"metadata": {"annotations": {MEMBERS_ANNOTATION: annotation} if annotation is not None else {}},
           "spec": {"holderIdentity": "t1"}}
    for details in (True, False):  # the webhook's cache reads without details, and still sees members
        state = LeaseState.from_json(obj, details=details)
        assert state.members == members and state.identity_bound is (members is not None)


def test_lease_body_writes_members_only_when_bound() -> None:
    common = dict(namespace="shop", name="lg.configmap.cfg", key=ResourceKey("", "ConfigMap", "shop", "cfg"),
                  txn="t1", duration_seconds=60, now=T0, principal="alice", profile=Profile.LEASEGATE)
    assert MEMBERS_ANNOTATION not in lease_body(**common)["metadata"]["annotations"]  # type: ignore[arg-type]
    crew = Members.of(["user:alice", "group:sre"])
    body = lease_body(**common, members=crew)  # type: ignore[arg-type]
    assert LeaseState.from_json(body).members == crew
