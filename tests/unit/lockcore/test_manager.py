"""LeaseManager's checks before any API call, on an API client that must never be used (lockcore.manager).

What it does on a cluster is tested against the real API server
(tests/integration/lockcore/test_manager.py); its decisions in
tests/unit/lockcore/test_algorithm.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lockcore.manager import LeaseManager
from lockcore.members import MembersError
from lockcore.naming import InvalidKeyError, LeaseRef, ResourceKey
from lockcore.profiles import Profile
from lockcore.settings import LockSettings
from tests.support.clock import FakeClock

KEY = ResourceKey("", "ConfigMap", "shop", "cfg")
REF = LeaseRef("shop", "lg.configmap.cfg")


class _NoCalls:
    """An API client that must never be used: what is checked is checked before any call."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the API client was used ({name})")


def manager(profile: Profile = Profile.LEASEGATE) -> LeaseManager:
    return LeaseManager(_NoCalls(), LockSettings(profile=profile), principal="alice")


@pytest.mark.parametrize(("profile", "members", "why"), [
    (Profile.LEASEGATE, ["alice"], "expected user:NAME"),
    (Profile.LEASEGATE, ["sa:shop"], "sa:NAMESPACE:NAME"),
    (Profile.JANUS, ["user:alice"], "the janus profile's Leases have no members"),
])
def test_acquire_refuses_bad_members_before_any_api_call(profile: Profile, members: list[str], why: str) -> None:
    m = manager(profile)
    with pytest.raises(MembersError, match=why):
        m.acquire(KEY, "t1", 60, members=members)
    with pytest.raises(MembersError, match=why):
        m.change_members(m.ref_for(KEY), "t1", add=members)


@pytest.mark.parametrize(("call", "error"), [
    (lambda m: m.acquire(KEY, "bad txn!", 10), InvalidKeyError),
    (lambda m: m.acquire(KEY, "t1", 0), ValueError),
    (lambda m: m.acquire(KEY, "t1", float("nan")), ValueError),
    (lambda m: m.acquire(KEY, "t1", 10, wait=-1), ValueError),
    (lambda m: m.acquire(REF, "t1", 10), InvalidKeyError),
    (lambda m: m.renew(REF, "t1", -1), ValueError),
    (lambda m: m.renew(KEY, "t1", 10), InvalidKeyError),
    (lambda m: m.release(REF, ""), InvalidKeyError),
    (lambda m: m.release(KEY, "t1"), InvalidKeyError),
    (lambda m: m.force_release(KEY), InvalidKeyError),
    (lambda m: m.get_lock(KEY), InvalidKeyError),
    (lambda m: m.list_locks("bad txn!"), InvalidKeyError),
    (lambda m: m.change_members(REF, "bad txn!", add=["user:bob"]), InvalidKeyError),
])
def test_invalid_input_is_refused_before_any_api_call(call: Callable[[LeaseManager], object],
                                                      error: type[Exception]) -> None:
    with pytest.raises(error):
        call(manager())


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_request_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="request_timeout must be positive"):
        LeaseManager(_NoCalls(), LockSettings(), principal="alice", request_timeout=timeout)


def test_a_principal_given_is_never_asked_for_and_the_clock_is_the_one_given() -> None:
    clock = FakeClock()
    m = LeaseManager(_NoCalls(), LockSettings(), principal="alice", clock=clock)
    assert m.principal(REF) == "alice" and m.clock is clock
