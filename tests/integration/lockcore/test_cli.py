"""The ``lockcore`` CLI and the ``kubectl lock`` plugin, run as processes against the real API server."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client

from lockcore.audit import BlockedWrite, event_body
from tests.support.cli import VENV_BIN, lockcore, plugin_env
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tools.localcluster import LocalCluster

pytestmark = pytest.mark.integration

def test_kubectl_plugin_list_finds_kubectl_lock(kubectl: KubectlRunner, cluster: LocalCluster) -> None:
    found = kubectl("plugin", "list", env=plugin_env(cluster), check=False)
    assert str(VENV_BIN / "kubectl-lock") in found.stdout, found.stdout + found.stderr


def test_lockcore_cli_acquire_status_list_renew_release(
    cluster: LocalCluster, namespace: str
) -> None:
    ns = ["-n", namespace]
    taken = lockcore(cluster, "acquire", "deployment/web", *ns, "--txn", "t42", "--ttl", "10m", "-o", "json")
    assert taken.returncode == 0, taken.stderr
    assert [lock["lease"] for lock in json.loads(taken.stdout)["locks"]] == [
        {"namespace": namespace, "name": "lg.deployment.web.apps"}]

    refused = lockcore(cluster, "acquire", "deploy/web", *ns, "--txn", "t43", "--ttl", "1m")
    assert refused.returncode == 3 and "'t42'" in refused.stderr

    status = json.loads(lockcore(cluster, "status", "deployments.apps/web", *ns, "-o", "json").stdout)
    assert status["locked"] and status["txn"] == "t42" and status["principal"] == "admin"
    assert status["leaseDurationSeconds"] == 600

    listed = json.loads(lockcore(cluster, "list", *ns, "--txn", "t42", "-o", "json").stdout)
    assert [i["lease"]["name"] for i in listed["items"]] == ["lg.deployment.web.apps"]

    assert lockcore(cluster, "renew", "deployment/web", *ns, "--txn", "t42", "--ttl", "90s").returncode == 0
    assert lockcore(cluster, "renew", "deployment/web", *ns, "--txn", "t43", "--ttl", "90s").returncode == 3
    assert lockcore(cluster, "release", "deployment/web", *ns, "--txn", "t42").returncode == 0
    assert lockcore(cluster, "renew", "deployment/web", *ns, "--txn", "t42", "--ttl", "90s").returncode == 4
    gone = lockcore(cluster, "status", "deployment/web", *ns)
    assert gone.returncode == 0 and "not locked" in gone.stdout


def test_acquire_of_several_objects_is_all_or_nothing(cluster: LocalCluster, namespace: str) -> None:
    ns = ["-n", namespace]
    assert lockcore(cluster, "acquire", "cm/b", *ns, "--txn", "other", "--ttl", "10m").returncode == 0

    # cm/b is held by another transaction: t42 gets neither, and keeps nothing it took on the way.
    refused = lockcore(cluster, "acquire", "cm/a", "cm/b", "cm/c", *ns, "--txn", "t42", "--ttl", "10m")
    assert refused.returncode == 3 and "'other'" in refused.stderr
    held = json.loads(lockcore(cluster, "list", *ns, "-o", "json").stdout)["items"]
    assert [(i["lease"]["name"], i["txn"]) for i in held] == [("lg.configmap.b", "other")]

    assert lockcore(cluster, "release", "cm/b", *ns, "--txn", "other").returncode == 0
    taken = lockcore(cluster, "acquire", "cm/c", "cm/a", "cm/b", *ns, "--txn", "t42", "--ttl", "10m", "-o", "json")
    assert taken.returncode == 0, taken.stderr
    assert sorted(lock["lease"]["name"] for lock in json.loads(taken.stdout)["locks"]) == [
        "lg.configmap.a", "lg.configmap.b", "lg.configmap.c"]
    assert lockcore(cluster, "release", "cm/a", "cm/b", "cm/c", *ns, "--txn", "t42").returncode == 0
    assert json.loads(lockcore(cluster, "list", *ns, "-o", "json").stdout)["items"] == []


def test_cli_usage_errors_exit_2(cluster: LocalCluster, namespace: str) -> None:
    assert lockcore(cluster, "acquire", "nosuchtype/x", "-n", namespace, "--txn", "t", "--ttl", "1m").returncode == 2
    bad_txn = lockcore(cluster, "acquire", "cm/x", "-n", namespace, "--txn", "bad txn", "--ttl", "1m")
    assert bad_txn.returncode == 2
    # kubectl's form: the message, then where the usage is; not the usage block itself.
    assert bad_txn.stderr.startswith("error: argument --txn: ") and "usage:" not in bad_txn.stderr
    assert bad_txn.stderr.endswith("\nSee 'lockcore acquire --help' for usage.\n")
    assert lockcore(cluster, "acquire", "cm/x", "-n", namespace, "--txn", "t", "--ttl", "0").returncode == 2


def test_plugin_acquire_status_list_release_and_cluster_scoped(
    kubectl: KubectlRunner, cluster: LocalCluster, namespace: str
) -> None:
    env = plugin_env(cluster)
    kubectl("lock", "acquire", "cm/settings", "-n", namespace, "--txn", "t42", "--ttl", "10m", env=env)
    kubectl("lock", "acquire", "ns/" + namespace, "--lock-namespace", namespace, "--txn", "t42",
            "--ttl", "10m", env=env)
    status = kubectl("lock", "status", "cm/settings", "-n", namespace, env=env)
    assert "locked by transaction t42" in status.stdout
    listed = json.loads(kubectl("lock", "list", "-n", namespace, "--txn", "t42", "-o", "json", env=env).stdout)
    assert sorted(i["lease"]["name"] for i in listed["items"]) == [
        "lg.configmap.settings", f"lgc.namespace.{namespace}"]
    kubectl("lock", "release", "cm/settings", "-n", namespace, "--txn", "t42", env=env)
    after = json.loads(kubectl("lock", "list", "-n", namespace, "-o", "json", env=env).stdout)
    assert [i["lease"]["name"] for i in after["items"]] == [f"lgc.namespace.{namespace}"]


def test_plugin_apply_delete_and_edit_stamp_the_transaction(
    kubectl: KubectlRunner, cluster: LocalCluster, namespace: str, tmp_path: Path,
    api_client: ApiClientFactory,
) -> None:
    core = client.CoreV1Api(api_client("admin"))
    manifest = tmp_path / "cms.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  k: v\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n"
    )
    env = plugin_env(cluster)
    kubectl("lock", "apply", "-f", str(manifest), "-n", namespace, "--txn", "t42", env=env)
    for name in ("one", "two"):
        annotations = core.read_namespaced_config_map(name, namespace).metadata.annotations
        assert annotations["leasegate.io/transaction"] == "t42"

    def edit(target: str, sed: str, *flags: str) -> tuple[str, str]:
        """``kubectl lock edit`` with an editor running ``sed``; returns what the editor was shown, and stdout."""
        shown = tmp_path / "shown"
        editor = tmp_path / "editor.sh"
        editor.write_text(f'#!/bin/sh\ncp "$1" {shown}\nsed -i \'{sed}\' "$1"\n')
        editor.chmod(0o755)
        done = kubectl("lock", "edit", target, "-n", namespace, "--txn", "t77", *flags,
                       env=plugin_env(cluster, KUBE_EDITOR=str(editor)))
        return shown.read_text(), done.stdout

    # YAML, as kubectl edit shows it: the user sees the stamp and saves an edit; the output is
    # kubectl edit's own line, not the object.
    shown, printed = edit("cm/one", "s/^  k: v$/  k: edited/")
    assert '    leasegate.io/transaction: "t77"' in shown and "\n  k: v\n" in shown
    assert printed == "configmap/one edited\n"
    edited = core.read_namespaced_config_map("one", namespace)
    assert edited.data == {"k": "edited"}
    assert edited.metadata.annotations["leasegate.io/transaction"] == "t77"
    # JSON with -o json: kubectl edit -o json edits JSON and prints the edited object.
    _, printed = edit("cm/one", 's/"edited"/"json"/', "-o", "json")
    assert core.read_namespaced_config_map("one", namespace).data == {"k": "json"}
    assert json.loads(printed)["data"] == {"k": "json"}
    # Quitting without a change cancels: the stamp alone is not written, and nothing is printed.
    before = core.read_namespaced_config_map("two", namespace).metadata.resource_version
    shown, printed = edit("cm/two", "s/^$//")
    assert "t77" in shown and printed == ""
    two = core.read_namespaced_config_map("two", namespace).metadata
    assert two.resource_version == before and two.annotations["leasegate.io/transaction"] == "t42"

    kubectl("lock", "delete", "cm/two", "-n", namespace, "--txn", "t42", env=env)
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
    assert "two" not in names and "one" in names


def test_plugin_audit_reads_blocked_write_events(
    kubectl: KubectlRunner, cluster: LocalCluster, namespace: str, api_client: ApiClientFactory,
) -> None:
    blocked = BlockedWrite(user="bob", operation="UPDATE", group="", kind="ConfigMap",
                           namespace=namespace, name="settings", lease="lg.configmap.settings",
                           holder="t42", declared_txn="", mode="deny", reason="not-in-transaction")
    other = BlockedWrite(**{**vars(blocked), "holder": "t9", "user": "carol"})
    core = client.CoreV1Api(api_client("admin"))
    for i, write in enumerate((blocked, other)):
        # The Event exactly as the webhook builds it.
        at = datetime(2026, 1, 1, 0, 0, i, tzinfo=timezone.utc)
        core.create_namespaced_event(namespace, event_body(write, name=f"settings.blocked{i}",
                                                           namespace=namespace, at=at, api_version="v1"),
                                     _preload_content=False)
    env = plugin_env(cluster)
    shown = json.loads(kubectl("lock", "audit", "-n", namespace, "--txn", "t42", "-o", "json", env=env).stdout)
    assert [(i["user"], i["holder"], i["reason"]) for i in shown["items"]] == [("bob", "t42", "not-in-transaction")]
    table = kubectl("lock", "audit", "-n", namespace, env=env).stdout
    assert "bob" in table and "carol" in table and f"configmap/settings -n {namespace}" in table


def test_release_says_what_happened_to_each_lock(cluster: LocalCluster, namespace: str) -> None:
    ns = ["-n", namespace]
    assert lockcore(cluster, "acquire", "cm/theirs", *ns, "--txn", "t7", "--ttl", "1m").returncode == 0
    assert lockcore(cluster, "acquire", "cm/mine", *ns, "--txn", "t42", "--ttl", "1m").returncode == 0
    released = lockcore(cluster, "release", "cm/mine", "cm/theirs", "cm/none", *ns, "--txn", "t42")
    assert released.returncode == 0, released.stderr
    assert released.stdout.splitlines() == [
        f"released configmap/mine -n {namespace}",
        f"configmap/theirs -n {namespace}: not held by t42 (held by t7)",
        f"configmap/none -n {namespace}: not held by t42 (no lock)",
    ]
    again = json.loads(lockcore(cluster, "release", "cm/mine", "cm/theirs", *ns, "--txn", "t42", "-o", "json").stdout)
    assert again["released"] is False
    assert [(lock["resource"], lock["released"], lock["heldBy"], lock["outcome"]) for lock in again["locks"]] == [
        (f"configmap/mine -n {namespace}", False, None, "not held by t42 (no lock)"),
        (f"configmap/theirs -n {namespace}", False, "t7", "not held by t42 (held by t7)"),
    ]
    assert again["locks"][1]["lease"] == {"namespace": namespace, "name": "lg.configmap.theirs"}
