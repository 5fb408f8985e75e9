"""webhook/transactions.py: a holder record is read only under a profile that has one, within the lookup timeout."""

from __future__ import annotations

from lockcore.profiles import LockProfile, Profile
from tests.support.apiserver import AnsweringApiServer
from webhook.apiserver import ApiServerError
from webhook.outcome import HolderIdentity, HolderRef, LookupFailed
from webhook.settings import Lookups
from webhook.transactions import HolderSource, make_holder_source

JANUS = LockProfile.of(Profile.JANUS)
RECORD = JANUS.holder_record
REF = HolderRef("shop", "t1")


def source(answer: tuple[int, object] | Exception, timeout: float = 2.0) -> tuple[HolderSource, AnsweringApiServer]:
    assert RECORD is not None
    api = AnsweringApiServer({RECORD.path("shop", "t1"): answer})
    made = make_holder_source(Lookups(lookup_timeout_seconds=timeout), JANUS, api)
    assert made is not None
    return made, api


def test_only_a_profile_with_a_holder_record_gets_a_source() -> None:
    assert make_holder_source(Lookups(), LockProfile.of(Profile.LEASEGATE), AnsweringApiServer()) is None


def test_the_record_names_the_identity_the_transaction_writes_as() -> None:
    holders, api = source((200, {"spec": {"serviceAccountName": "runner"}}), timeout=0.4)
    assert holders.lookup(REF) == HolderIdentity("system:serviceaccount:shop:runner")
    assert [call.timeout for call in api.calls] == [0.4]


def test_no_record_means_nobody_is_the_holder_and_a_failed_read_says_why() -> None:
    assert source((404, {}))[0].lookup(REF) == HolderIdentity()
    failed = source((403, {"message": "forbidden"}))[0].lookup(REF)
    assert isinstance(failed, LookupFailed) and "HTTP 403 forbidden" in failed.error
    unreachable = source(ApiServerError("/x", None, "connection refused"))[0].lookup(REF)
    assert isinstance(unreachable, LookupFailed) and "connection refused" in unreachable.error
