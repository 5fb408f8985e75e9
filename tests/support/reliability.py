"""Fixtures for the reliability suite (a plugin): a cluster to break, the webhook under abuse.

Figures for the report are tests/support/figures.py.

* ``fragile_cluster``: a second, dedicated control plane for the tests that
  stop the kube-apiserver, so the session ``cluster`` is never disturbed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.support.webhooks import WebhookFactory
from tools.localcluster import LocalCluster, running
from tools.localwebhook import RunningWebhook


def stress_seconds(default: float) -> float:
    """Duration of the timed stress runs; LEASEGATE_STRESS_SECONDS makes a longer soak."""
    return float(os.environ.get("LEASEGATE_STRESS_SECONDS", default))


@pytest.fixture(scope="module")
def fragile_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own, for tests that take the API server down."""
    with running(tmp_path_factory.mktemp("fragile")) as local:
        yield local


@pytest.fixture
def fragile_namespace(fragile_cluster: LocalCluster) -> Iterator[str]:
    api = config.new_client_from_config(config_file=str(fragile_cluster.kubeconfig))
    name = f"fragile-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    api.close()


REL_KEY = "rel"


@pytest.fixture(scope="session")
def rel_webhook(webhook_factory: WebhookFactory) -> RunningWebhook:
    """The webhook under abuse: deny mode, consistent lookups, a small body cap, 2 workers x 4 threads."""
    return webhook_factory(REL_KEY, lease_lookup="consistent", mode="deny", max_body_bytes=65536,
                           workers=2, threads=4)
