"""webhook/registration.py: the generated CA reaches every webhook's caBundle, once, guarded by resourceVersion.

The registration itself is compared with the chart's, field for field: tests/unit/charts/test_chart.py.
"""

from __future__ import annotations

import base64

import pytest

from tests.support.apiserver import AnsweringApiServer
from webhook.registration import VWC_PATH, ensure_ca_bundle

CA = b"-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n"
BUNDLE = base64.b64encode(CA).decode()


def configuration(*bundles: str) -> dict[str, object]:
    return {"metadata": {"name": "lg", "resourceVersion": "7"},
            "webhooks": [{"name": f"w{i}", "clientConfig": {"caBundle": b}} for i, b in enumerate(bundles)]}


def test_every_webhooks_bundle_is_written_in_one_conditional_update() -> None:
    api = AnsweringApiServer({f"{VWC_PATH}/lg": (200, configuration("old", BUNDLE))})
    assert ensure_ca_bundle(api, "lg", CA) is True
    (put,) = [call for call in api.calls if call.method == "PUT"]
    assert put.path == f"{VWC_PATH}/lg" and put.body["metadata"]["resourceVersion"] == "7"
    assert [w["clientConfig"]["caBundle"] for w in put.body["webhooks"]] == [BUNDLE, BUNDLE]


def test_nothing_is_written_when_it_is_there_or_the_configuration_is_missing() -> None:
    current = AnsweringApiServer({f"{VWC_PATH}/lg": (200, configuration(BUNDLE))})
    assert ensure_ca_bundle(current, "lg", CA) is False and [c.method for c in current.calls] == ["GET"]
    assert ensure_ca_bundle(AnsweringApiServer(), "lg", CA) is False


def test_a_refused_update_is_an_error_the_caller_retries() -> None:
    api = AnsweringApiServer({f"{VWC_PATH}/lg": (200, configuration("old"))}, write_status=409)
    with pytest.raises(RuntimeError, match="HTTP 409"):
        ensure_ca_bundle(api, "lg", CA)
