"""The demo's lock story with the webhook running as pods, installed by Helm on a real node.

Run by ``make demo-helm`` inside ``python -m tools.node run`` (a real
single-node cluster: kubelet, containerd, kube-proxy, in a network namespace of
its own), so KUBECONFIG points at its API server with contexts admin, alice and
bob. Every step is the command a person would type:

1. ``helm install`` of charts/leasegate with the image built from the
   Dockerfile (imported into the node's containerd: ``imagePullPolicy: Never``);
2. alice locks ``configmap/settings`` for t42 with ``kubectl lock``;
3. bob's write is refused by a webhook pod, alice's (stamped t42) goes through;
4. ``kubectl lock audit`` shows the refusal; the pods' /metrics count it;
5. alice releases; bob may write; ``helm uninstall`` leaves no webhook registration.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from kubernetes import client, config

from tools import demo
from tools.demo import lock_story, sh, step
from tools.localwebhook import as_body, grant_edit
from tools.node.image import WEBHOOK_IMAGE

CHART = Path(__file__).resolve().parent.parent / "charts" / "leasegate"
NAMESPACE = demo.NAMESPACE


def install() -> None:
    repository, _, tag = WEBHOOK_IMAGE.rpartition(":")
    step("helm install: the chart's Deployment runs the image the Dockerfile built, two replicas")
    sh(f"helm install leasegate {CHART} -n leasegate-system --create-namespace "
       f"--set image.repository={repository} --set image.tag={tag} --set image.pullPolicy=Never --wait",
       user="admin", expect_ok=True)
    sh("kubectl -n leasegate-system get pods -o wide", user="admin", expect_ok=True)
    sh("kubectl get validatingwebhookconfigurations", user="admin", expect_ok=True)


def main() -> int:
    admin = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=os.environ["KUBECONFIG"], context="admin")
    # helm's cache and config go to a scratch directory, not the user's home.
    scratch = Path(tempfile.mkdtemp(prefix="leasegate-demo-helm-"))
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(scratch / var.lower())
    try:
        install()
        client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": NAMESPACE}}))
        grant_edit(admin, NAMESPACE, locks=True)
        lock_story(admin)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        step("helm uninstall: no webhook registration is left behind")
        sh("helm uninstall leasegate -n leasegate-system --wait", user="admin", expect_ok=True)
        sh("kubectl get validatingwebhookconfigurations", user="admin", expect_ok=True)
        client.CoreV1Api(admin).delete_namespace(NAMESPACE)
    if not client.AdmissionregistrationV1Api(admin).list_validating_webhook_configuration().items == []:
        demo._failures.append("a ValidatingWebhookConfiguration survived helm uninstall")
    if demo._failures:
        print("\nDEMO FAILED:\n  " + "\n  ".join(demo._failures))
        return 1
    print("\nDemo complete: the webhook ran as pods installed by Helm and held the lock against bob.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
