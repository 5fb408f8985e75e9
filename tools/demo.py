"""The end-to-end demo: a lock taken with kubectl, enforced by the webhook.

Run by ``make demo`` inside ``python -m tools.localcluster run``, so KUBECONFIG
points at a fresh local kube-apiserver whose kubeconfig has the contexts
``admin``, ``alice`` and ``bob``. Every step runs the real command a person
would type (``kubectl``, ``kubectl lock``) and prints it with its output.

1. start ``leasegate-webhook`` over TLS and register it (ValidatingWebhookConfiguration
   with a URL client config and the webhook's generated CA as caBundle);
2. alice locks ``configmap/settings`` for transaction t42;
3. bob's ``kubectl annotate`` is refused, with the webhook's message;
4. alice writes as part of t42 and is let through;
5. ``kubectl lock audit`` shows who was blocked and why, from the ledger
   (OpenReports), which outlives Events;
6. alice releases the lock, bob's write now passes;
7. a pipeline as one transaction: ``kubectl lock run -f k8s/ -- kubectl lock apply -f k8s/``
   locks what the manifests name while the command runs; everything is cleaned up.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from kubernetes import client, config

from lockcore.kube import LOCKED_LABEL
from lockcore.ledger import list_ledger
from tools.localcluster import BIN_DIR, REPO_ROOT
from tools.localwebhook import (
    RunningWebhook,
    as_body,
    grant_edit,
    guard,
    install_report_crds,
    register_webhook,
    start_webhook,
    wait_for,
)

NAMESPACE = "shop"
TXN = "t42"
_failures: list[str] = []


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def sh(command: str, *, user: str, expect_ok: bool) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as ``user``, print it, check the outcome.

    Each user has a kubeconfig of their own beside the admin one (written by
    tools.localcluster), as each person would on their own machine.
    """
    print(f"\n[{user}]$ {command}", flush=True)
    env = dict(os.environ)
    env["KUBECONFIG"] = str(Path(env["KUBECONFIG"]).with_name(f"kubeconfig-{user}"))
    env["PATH"] = os.pathsep.join([str(BIN_DIR), str(Path(sys.executable).parent), env["PATH"]])
    # This checkout's kubectl-lock, whichever tree the venv's (editable) install points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, env=env, timeout=60)
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print("  " + output.replace("\n", "\n  "), flush=True)
    if (result.returncode == 0) != expect_ok:
        _failures.append(f"{command!r} as {user}: expected {'success' if expect_ok else 'refusal'}")
        print(f"  !! unexpected exit code {result.returncode}", flush=True)
    return result


def blocked_writes_on_record(api: client.ApiClient) -> int:
    """How many blocked writes the ledger (the OpenReports Report) in the demo namespace counts."""
    return sum(entry.count for entry in list_ledger(api, NAMESPACE) or [])


def lock_story(admin: client.ApiClient) -> None:
    """The lock story both demos tell, in namespace 'shop' (it exists; alice and bob may edit and lock)."""
    step("alice and bob share namespace 'shop'; a ConfigMap to protect")
    sh(f"kubectl create configmap settings -n {NAMESPACE} --from-literal=replicas=3",
       user="alice", expect_ok=True)

    step(f"alice starts transaction {TXN}: she locks the ConfigMap")
    sh(f"kubectl lock acquire configmap/settings -n {NAMESPACE} --txn {TXN} --ttl 5m",
       user="alice", expect_ok=True)
    sh(f"kubectl lock status configmap/settings -n {NAMESPACE}", user="bob", expect_ok=True)
    step("The lock marked the object: the API server now calls the webhook for it, and for no other")
    sh(f"kubectl get configmaps -n {NAMESPACE} -l {LOCKED_LABEL} -L {LOCKED_LABEL}", user="bob", expect_ok=True)

    step("bob, outside the transaction, tries to change it: refused")
    sh(f"kubectl annotate configmap settings -n {NAMESPACE} owner=bob", user="bob", expect_ok=False)

    step("bob cannot get in by claiming the transaction on an edit of alice's stamped object either")
    sh(f"kubectl annotate configmap settings -n {NAMESPACE} leasegate.io/transaction={TXN}",
       user="alice", expect_ok=True)
    sh(f"kubectl label configmap settings -n {NAMESPACE} tier=gold", user="bob", expect_ok=False)

    step(f"alice writes as part of {TXN}: allowed")
    sh(f"kubectl annotate --overwrite configmap settings -n {NAMESPACE} "
       f"owner=alice leasegate.io/transaction={TXN}", user="alice", expect_ok=True)

    step("The audit trail: who was blocked, and by which lock (the ledger outlives the hour Events last)")
    # The webhook writes the ledger off the request path (each worker flushes
    # every few seconds): wait until both of bob's refusals are on record.
    wait_for(lambda: blocked_writes_on_record(admin) >= 2, timeout=30)
    sh(f"kubectl lock audit -n {NAMESPACE} --since 7d", user="admin", expect_ok=True)
    sh(f"kubectl lock audit configmap/settings -n {NAMESPACE} --user bob --since 1h", user="admin", expect_ok=True)
    sh(f"kubectl get reports.openreports.io -n {NAMESPACE}", user="admin", expect_ok=True)

    step(f"alice ends {TXN}: the lock is released and bob may write again")
    sh(f"kubectl lock release configmap/settings -n {NAMESPACE} --txn {TXN}", user="alice", expect_ok=True)
    sh(f"kubectl annotate --overwrite configmap settings -n {NAMESPACE} owner=bob", user="bob", expect_ok=True)
    sh(f"kubectl get configmaps -n {NAMESPACE} -l {LOCKED_LABEL}", user="bob", expect_ok=True)


def pipeline_story(workdir: Path) -> None:
    """A deploy script as one transaction: its objects locked exactly as long as it runs."""
    manifests = workdir / "k8s"
    manifests.mkdir()
    (manifests / "app.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {NAMESPACE}\n"
        f"data:\n  replicas: \"5\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\n"
        f"  namespace: {NAMESPACE}\ndata:\n  beta: \"on\"\n")
    step("A pipeline as one transaction: lock what k8s/ names (flags does not exist yet), apply, release")
    sh(f"kubectl lock run --txn t43 --ttl 30s -f {manifests} -- kubectl lock apply -f {manifests}",
       user="alice", expect_ok=True)
    sh(f"kubectl lock list -n {NAMESPACE}", user="bob", expect_ok=True)


def main() -> int:
    kubeconfig = Path(os.environ["KUBECONFIG"])
    admin = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context="admin")
    workdir = Path(tempfile.mkdtemp(prefix="leasegate-demo-"))

    step("Start the webhook (gunicorn, TLS) and register it with the API server")
    webhook: RunningWebhook = start_webhook(workdir, kubeconfig, "demo")  # default settings
    print(f"  webhook at {webhook.url}, CA {webhook.ca_file}")
    client.CoreV1Api(admin).create_namespace(as_body({"metadata": {"name": NAMESPACE}}))
    grant_edit(admin, NAMESPACE, locks=True)
    install_report_crds(admin)  # as the chart does: where the ledger of blocked writes lives
    vwc = register_webhook(admin, webhook)
    guard(admin, NAMESPACE, webhook.key)
    try:
        lock_story(admin)
        pipeline_story(workdir)
    finally:
        step("Clean up")
        client.AdmissionregistrationV1Api(admin).delete_validating_webhook_configuration(vwc)
        client.CoreV1Api(admin).delete_namespace(NAMESPACE)
        webhook.stop()
        print("  webhook stopped, configuration and namespace deleted")

    if _failures:
        print("\nDEMO FAILED:\n  " + "\n  ".join(_failures))
        return 1
    print("\nDemo complete: the lock held against bob and let alice's transaction through.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
