"""The chart's pod anti-affinity meets the real scheduler on the one-node cluster.

``soft`` (the default) lets both replicas share the node (test_helm_on_node
shows both Ready on it); ``hard`` must keep the second replica off a node that
already runs one. Only the chart's Deployment (with its ServiceAccount and
certificate Secret) is applied, into a namespace of its own: no webhook is
registered, so nothing else on the node is affected.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.integration.node.conftest import NodeKubectl
from tests.support.helm import template
from tools.node.cluster import NODE_NAME
from tools.node.image import WEBHOOK_IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.node, pytest.mark.timeout(600)]


def scheduling(kubectl: NodeKubectl, namespace: str) -> tuple[list[str], list[str]]:
    """(nodes of scheduled pods, messages of pods the scheduler refused)."""
    pods: list[dict[str, Any]] = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    placed = [p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName")]
    refused = [c.get("message", "") for p in pods for c in p["status"].get("conditions", [])
               if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"]
    return placed, refused


def test_hard_anti_affinity_keeps_the_second_replica_off_the_only_node(node_kubectl: NodeKubectl) -> None:
    namespace = f"affinity-{uuid.uuid4().hex[:6]}"
    repository, _, tag = WEBHOOK_IMAGE.rpartition(":")
    manifests = [m for m in template({"podAntiAffinity": "hard", "image": {
        "repository": repository, "tag": tag, "pullPolicy": "Never"}}, namespace=namespace)
        if m["kind"] in ("Deployment", "ServiceAccount", "Secret")]
    assert [m["kind"] for m in manifests].count("Deployment") == 1
    node_kubectl("create", "namespace", namespace)
    try:
        node_kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        deadline = time.monotonic() + 60
        placed, refused = scheduling(node_kubectl, namespace)
        while not (placed and refused) and time.monotonic() < deadline:
            time.sleep(0.5)
            placed, refused = scheduling(node_kubectl, namespace)
        assert placed == [NODE_NAME], (placed, refused)
        assert len(refused) == 1 and "anti-affinity" in refused[0], refused
    finally:
        node_kubectl("delete", "namespace", namespace, "--wait=false")
