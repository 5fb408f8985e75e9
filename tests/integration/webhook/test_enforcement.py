"""Every lock rule, proven with real writes through the Python client and kubectl.

The API server calls the real webhook over TLS (see conftest); alice holds the
locks (she is the principal recorded on the Lease), bob is another developer.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.kube import LOCKED_LABEL
from lockcore.naming import ResourceKey
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tests.support.webhooks import WebhookFactory
from tools.localwebhook import (
    OBJECT_SELECT_LABEL,
    RunningWebhook,
    grant_edit,
    guard,
    lock,
    register_webhook,
    unlock,
    wait_for,
)

pytestmark = pytest.mark.integration
TXN = "leasegate.io/transaction"


def cm(namespace: str, name: str = "cfg") -> ResourceKey:
    return ResourceKey("", "ConfigMap", namespace, name)


def make_cm(api: client.ApiClient, namespace: str, name: str = "cfg", **annotations: str) -> None:
    client.CoreV1Api(api).create_namespaced_config_map(
        namespace, {"metadata": {"name": name, "annotations": annotations}, "data": {"k": "v1"}},
        _preload_content=False)


def patch_error(api: client.ApiClient, namespace: str, body: dict[str, object], name: str = "cfg") -> ApiException | None:
    try:
        client.CoreV1Api(api).patch_namespaced_config_map(name, namespace, body, _preload_content=False)
    except ApiException as exc:
        return exc
    return None


def message(exc: ApiException | None) -> str:
    assert exc is not None, "the write was allowed"
    return str(json.loads(exc.body)["message"])


# -- Python client --------------------------------------------------------------


def test_update_without_proof_is_denied_403_with_actionable_message(
        guarded: str, api_client: ApiClientFactory) -> None:
    admin, bob = api_client("admin"), api_client("bob")
    make_cm(admin, guarded)
    lock(admin, cm(guarded), "t1")
    exc = patch_error(bob, guarded, {"data": {"k": "v2"}})
    assert exc is not None and exc.status == 403
    text = message(exc)
    for part in (f"configmap/cfg -n {guarded}", "'t1'", f"{guarded}/lg.configmap.cfg", "expires in",
                 "leasegate.io/transaction=t1"):
        assert part in text
    assert patch_error(bob, guarded, {"metadata": {"annotations": {TXN: "t2"}}}) is not None


def test_update_setting_the_holders_annotation_is_allowed(guarded: str, api_client: ApiClientFactory) -> None:
    admin, bob = api_client("admin"), api_client("bob")
    make_cm(admin, guarded)
    lock(admin, cm(guarded), "t1")
    # Setting the annotation in the write itself proves membership, whoever sends it.
    assert patch_error(bob, guarded, {"metadata": {"annotations": {TXN: "t1"}}, "data": {"k": "v2"}}) is None


def test_create_and_generate_name(guarded: str, api_client: ApiClientFactory) -> None:
    admin = api_client("admin")
    core = client.CoreV1Api(admin)
    lock(admin, cm(guarded, "new"), "t1")
    with pytest.raises(ApiException) as denied:
        make_cm(admin, guarded, "new")
    assert denied.value.status == 403
    with pytest.raises(ApiException) as unmarked:
        make_cm(admin, guarded, "new", **{TXN: "t1"})
    # Creates are the reservation policy's (in the API server): it asks for the marker and the annotation.
    assert unmarked.value.status == 403 and f"set label {LOCKED_LABEL}=t1" in message(unmarked.value)
    core.create_namespaced_config_map(guarded, {"metadata": {"name": "new", "annotations": {TXN: "t1"},
                                                             "labels": {LOCKED_LABEL: "t1"}}}, _preload_content=False)
    # generateName: no lock can name an object that does not exist yet.
    core.create_namespaced_config_map(guarded, {"metadata": {"generateName": "gen-"}}, _preload_content=False)


def test_delete_is_judged_on_the_stored_object(guarded: str, api_client: ApiClientFactory) -> None:
    admin, alice, bob = api_client("admin"), api_client("alice"), api_client("bob")
    make_cm(admin, guarded)
    lock(admin, cm(guarded), "t1")
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(bob).delete_namespaced_config_map("cfg", guarded)
    assert denied.value.status == 403 and "to delete as part of the transaction" in message(denied.value)
    # alice (the principal) stamps the object, then deletes it.
    assert patch_error(alice, guarded, {"metadata": {"annotations": {TXN: "t1"}}}) is None
    with pytest.raises(ApiException) as carried:
        client.CoreV1Api(bob).delete_namespaced_config_map("cfg", guarded)
    assert "carried over" in message(carried.value)
    client.CoreV1Api(alice).delete_namespaced_config_map("cfg", guarded)


def test_second_user_carrying_the_holders_annotation_is_not_proof(
        guarded: str, api_client: ApiClientFactory) -> None:
    admin, alice, bob = api_client("admin"), api_client("alice"), api_client("bob")
    make_cm(admin, guarded, **{TXN: "t1"})
    lock(admin, cm(guarded), "t1", principal="alice")
    text = message(patch_error(bob, guarded, {"data": {"k": "bob"}}))
    assert "carried over" in text and "'alice'" in text and "'bob'" in text
    assert patch_error(alice, guarded, {"data": {"k": "alice"}}) is None


def test_largest_objects_are_judged_not_failed(guarded: str, api_client: ApiClientFactory) -> None:
    """A ConfigMap near etcd's 1.5 MiB request limit makes a review of over 2 MiB
    (object and oldObject): the webhook must decide it (403 with the lock's message,
    then allowed with proof), not answer 413 and leave it to failurePolicy."""
    admin, alice, bob = api_client("admin"), api_client("alice"), api_client("bob")
    big = "x" * 1_000_000
    client.CoreV1Api(admin).create_namespaced_config_map(
        guarded, {"metadata": {"name": "big"}, "data": {"blob": big}}, _preload_content=False)
    lock(admin, cm(guarded, "big"), "t1", principal="alice")
    exc = patch_error(bob, guarded, {"data": {"blob": big[:-1] + "y"}}, name="big")
    assert exc is not None and exc.status == 403, exc
    assert f"configmap/big -n {guarded}" in message(exc)
    proof = {"metadata": {"annotations": {TXN: "t1"}}, "data": {"blob": big[:-1] + "z"}}
    assert patch_error(alice, guarded, proof, name="big") is None


def test_expired_lease_allows(guarded: str, api_client: ApiClientFactory) -> None:
    admin, bob = api_client("admin"), api_client("bob")
    make_cm(admin, guarded)
    # Expired 10 s ago: past the 2 s clock-skew margin.
    lock(admin, cm(guarded), "t1", duration_seconds=5, age_seconds=15)
    assert patch_error(bob, guarded, {"data": {"k": "v2"}}) is None
    unlock(admin, cm(guarded))
    assert patch_error(bob, guarded, {"data": {"k": "v3"}}) is None


def test_lock_leases_are_never_intercepted(guarded: str, api_client: ApiClientFactory) -> None:
    admin = api_client("admin")
    lock(admin, cm(guarded), "t1")
    lock(admin, cm(guarded), "t2")  # delete + create of the lock Lease itself: never judged
    unlock(admin, cm(guarded))


def test_status_subresource_and_finalizer_removal_never_hang(
        guarded: str, api_client: ApiClientFactory) -> None:
    admin, alice, bob = api_client("admin"), api_client("alice"), api_client("bob")
    core = client.CoreV1Api(admin)
    core.create_namespaced_config_map(guarded, {"metadata": {"name": "cfg", "finalizers": ["example.com/hold"],
                                                             "annotations": {TXN: "t1"}}},
                                      _preload_content=False)
    lock(admin, cm(guarded), "t1", principal="alice")
    client.CoreV1Api(alice).delete_namespaced_config_map("cfg", guarded)  # now Terminating
    # A controller (bob here) removing its finalizer must pass, lock or not.
    assert patch_error(bob, guarded, {"metadata": {"finalizers": None}}) is None
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("cfg", guarded)
    assert gone.value.status == 404


def test_cluster_scoped_object_locked_in_the_lock_namespace(
        deny_webhook: RunningWebhook, api_client: ApiClientFactory, kubectl: KubectlRunner) -> None:
    admin = api_client("admin")
    rbac = client.RbacAuthorizationV1Api(admin)
    name = f"leasegate-test-{os.getpid()}"
    labels = {OBJECT_SELECT_LABEL: deny_webhook.key}
    rbac.create_cluster_role({"metadata": {"name": name, "labels": labels}, "rules": []}, _preload_content=False)
    key = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", name)
    lock(admin, key, "t9")
    try:
        with pytest.raises(ApiException) as denied:
            rbac.patch_cluster_role(name, {"metadata": {"annotations": {"x": "y"}}})
        assert denied.value.status == 403
        assert f"leasegate-system/lgc.clusterrole.{name}.rbac.authorization.k8s.io" in message(denied.value)
        out = kubectl("annotate", "clusterrole", name, "note=1", check=False)
        assert out.returncode != 0 and "locked by transaction 't9'" in out.stderr
        kubectl("annotate", "clusterrole", name, f"{TXN}=t9")
    finally:
        unlock(admin, key)
        rbac.delete_cluster_role(name)


# -- kubectl ----------------------------------------------------------------------


def _editor(tmp_path: Path, sed: str) -> dict[str, str]:
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\nsed -i '{sed}' \"$1\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"KUBE_EDITOR": str(script), "EDITOR": str(script)}


def test_kubectl_annotate_apply_delete(guarded: str, api_client: ApiClientFactory, kubectl: KubectlRunner,
                                       tmp_path: Path) -> None:
    admin = api_client("admin")
    kubectl("create", "configmap", "cfg", "-n", guarded, "--from-literal=k=v1", user="bob")
    lock(admin, cm(guarded), "t1")

    denied = kubectl("annotate", "configmap", "cfg", "-n", guarded, "note=x", user="bob", check=False)
    assert denied.returncode == 1
    assert 'admission webhook "locks.leasegate.io" denied the request' in denied.stderr
    assert "is locked by transaction 't1'" in denied.stderr
    kubectl("annotate", "configmap", "cfg", "-n", guarded, f"{TXN}=t1", "note=x", user="bob")

    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": guarded},
                "data": {"k": "v"}}
    lock(admin, cm(guarded, "applied"), "t1")
    out = kubectl("apply", "-f", "-", input=json.dumps(manifest), user="bob", check=False)
    assert out.returncode != 0 and "locked by transaction 't1'" in out.stderr
    manifest["metadata"]["annotations"] = {TXN: "t1"}  # type: ignore[index]
    out = kubectl("apply", "-f", "-", input=json.dumps(manifest), user="bob", check=False)
    # A locked name is created marked, or later writes would not reach the webhook.
    assert out.returncode != 0 and f"set label {LOCKED_LABEL}=t1" in out.stderr  # the reservation policy
    manifest["metadata"]["labels"] = {LOCKED_LABEL: "t1"}  # type: ignore[index]
    kubectl("apply", "-f", "-", input=json.dumps(manifest), user="bob")

    # Server-side dry run is judged exactly the same.
    dry = kubectl("delete", "configmap", "applied", "-n", guarded, "--dry-run=server", user="bob", check=False)
    assert dry.returncode != 0 and "carried over" in dry.stderr
    out = kubectl("delete", "configmap", "applied", "-n", guarded, user="bob", check=False)
    assert out.returncode != 0 and "carried over" in out.stderr
    kubectl("delete", "configmap", "applied", "-n", guarded, "--dry-run=server", user="alice")
    kubectl("delete", "configmap", "applied", "-n", guarded, user="alice")


def test_kubectl_edit_by_second_user_is_denied_and_by_principal_allowed(
        guarded: str, api_client: ApiClientFactory, kubectl: KubectlRunner, tmp_path: Path) -> None:
    admin = api_client("admin")
    make_cm(admin, guarded, **{TXN: "t1"})
    lock(admin, cm(guarded), "t1", principal="alice")
    editor = _editor(tmp_path, "s/k: v1/k: edited/")
    out = kubectl("edit", "configmap", "cfg", "-n", guarded, user="bob", env=editor, check=False)
    assert out.returncode != 0
    assert "carried over from the stored object" in out.stderr and "'alice'" in out.stderr
    kubectl("edit", "configmap", "cfg", "-n", guarded, user="alice", env=editor)
    data = client.CoreV1Api(admin).read_namespaced_config_map("cfg", guarded).data
    assert data == {"k": "edited"}


def test_a_namespace_label_cannot_weaken_enforcement(
        guarded: str, api_client: ApiClientFactory, kubectl: KubectlRunner, deny_webhook: RunningWebhook) -> None:
    """Whoever may label a namespace must not switch its locks off (12.2): plainly or through /status."""
    admin = api_client("admin")
    make_cm(admin, guarded)
    lock(admin, cm(guarded), "t1")
    for mode in ("warn", "dryrun"):
        guard(admin, guarded, deny_webhook.key, **{"leasegate.io/enforcement": mode})
        out = kubectl("annotate", "configmap", "cfg", "-n", guarded, f"note={mode}", user="bob", check=False)
        assert out.returncode == 1 and "locked by transaction 't1'" in out.stderr, out.stderr
    kubectl("patch", "namespace", guarded, "--subresource=status", "--type=merge",
            "-p", '{"metadata":{"labels":{"leasegate.io/enforcement":"dryrun"}}}')
    out = kubectl("annotate", "configmap", "cfg", "-n", guarded, "note=status", user="bob", check=False)
    assert out.returncode == 1 and "locked by transaction 't1'" in out.stderr


def test_namespace_label_makes_a_lenient_mode_stricter(
        namespace: str, api_client: ApiClientFactory, kubectl: KubectlRunner,
        webhook_factory: WebhookFactory) -> None:
    admin = api_client("admin")
    lenient = webhook_factory("dryrun", lease_lookup="consistent", mode="dryrun")
    register_webhook(admin, lenient)
    grant_edit(admin, namespace)
    guard(admin, namespace, lenient.key, **{"leasegate.io/enforcement": "warn"})
    make_cm(admin, namespace)
    lock(admin, cm(namespace), "t1")
    out = kubectl("annotate", "configmap", "cfg", "-n", namespace, "note=x", user="bob")
    assert "Warning: leasegate (warn mode, not enforced)" in out.stderr
    assert "locked by transaction 't1'" in out.stderr
    guard(admin, namespace, lenient.key, **{"leasegate.io/enforcement": "deny"})
    # The label is cached for up to 10 s (NamespaceModes); deny then refuses.
    wait_for(lambda: kubectl("annotate", "configmap", "cfg", "-n", namespace, "note=y", "--overwrite",
                             user="bob", check=False).returncode == 1, timeout=20, interval=1)
