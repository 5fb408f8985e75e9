"""webhook/namespaces.py: the namespace label's mode, read within a timeout and cached for a while."""

from __future__ import annotations

from lockcore.kube import namespace_path
from tests.support.apiserver import AnsweringApiServer
from webhook.apiserver import ApiServerError
from webhook.namespaces import NamespaceModes
from webhook.settings import Enforcement, EnforcementMode

LABEL = Enforcement().namespace_mode_label


def labelled(value: object) -> tuple[int, object]:
    return 200, {"metadata": {"labels": {LABEL: value}}}


def test_the_label_names_a_mode_and_is_read_once_per_ttl() -> None:
    api = AnsweringApiServer({namespace_path("shop"): labelled("WARN")})
    modes = NamespaceModes(api, LABEL, ttl_seconds=60, timeout=0.3)
    assert modes.get("shop") is EnforcementMode.WARN and modes.get("shop") is EnforcementMode.WARN
    assert [(c.path, c.timeout) for c in api.calls] == [(namespace_path("shop"), 0.3)]


def test_no_label_a_bad_value_or_an_unreadable_namespace_change_nothing() -> None:
    api = AnsweringApiServer({namespace_path("a"): (200, {"metadata": {}}), namespace_path("b"): labelled("loud"),
                              namespace_path("c"): ApiServerError("/c", None, "timed out")})
    modes = NamespaceModes(api, LABEL)
    assert [modes.get(ns) for ns in ("a", "b", "c", "gone")] == [None, None, None, None]
