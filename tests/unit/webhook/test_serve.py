"""webhook/serve.py: gunicorn's options come from the serving section alone; the hooks wire the probes."""

from __future__ import annotations

import os

import pytest

from webhook.certs import generate
from webhook.serve import gunicorn_options, hooks_from_settings, server_hooks
from webhook.settings import ServingSettings, WebhookSettings

HOOKS = {"when_ready", "post_worker_init", "worker_exit", "child_exit"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    paths = generate(tmp_path_factory.mktemp("certs"), "leasegate", "leasegate-system")
    return str(paths.cert_file), str(paths.key_file)


def test_gunicorn_options_are_the_serving_sections(certificate: tuple[str, str]) -> None:
    serving = ServingSettings(bind_address="127.0.0.1", port=9443, workers=3, threads=7, keepalive_seconds=12,
                              graceful_timeout_seconds=9.5, request_read_timeout_seconds=2.5, log_level="DEBUG")
    options = gunicorn_options(serving, *certificate, server_hooks(serving, lambda: (True, "")))
    assert options["bind"] == ["127.0.0.1:9443"]
    assert (options["workers"], options["threads"], options["keepalive"], options["graceful_timeout"]) == (3, 7, 12, 9)
    assert (options["certfile"], options["keyfile"]) == certificate
    assert options["worker_class"].read_timeout == 2.5
    assert options["logconfig_dict"]["root"]["level"] == "DEBUG"
    assert HOOKS <= options.keys() and options["preload_app"] is False


def test_no_workers_configured_means_two_per_cpu(certificate: tuple[str, str]) -> None:
    options = gunicorn_options(ServingSettings(workers=0), *certificate, {})
    assert options["workers"] == 2 * (os.cpu_count() or 1)


def test_the_hooks_from_settings_are_all_of_gunicorns_server_hooks() -> None:
    assert set(hooks_from_settings(WebhookSettings(), ca_pem=None)) == HOOKS
    assert set(hooks_from_settings(WebhookSettings(), ca_pem=b"pem")) == HOOKS
