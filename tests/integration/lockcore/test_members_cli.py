"""The CLI of identity-bound locks: acquire --member/--members-only, members add|remove, status/list show them.

Against the real API server and the shipped webhook (the members rules are
the webhook's; tests/integration/webhook/test_members.py proves each write path).
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from lockcore.cli import main
from lockcore.members import Members
from tests.support.cli import lockcore
from tests.support.cluster import ApiClientFactory, KubectlRunner
from tools.localcluster import LocalCluster

pytestmark = pytest.mark.integration
# The namespace is judged by the shipped webhook (default settings, the chart's registration).
judged = pytest.mark.usefixtures("locked_ns")


@pytest.mark.parametrize("spec", ["alice", "user:", "sa:shop", "sa:Bad:x", "role:admin"])
def test_a_bad_member_is_one_usage_error_before_any_call(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    # No cluster at all: the value is refused by the parser, before a kubeconfig is even read.
    code = main(["acquire", "cm/x", "--txn", "t1", "--ttl", "1m", "--member", spec, "--kubeconfig", "/nonexistent"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: argument --member: ") and f"got {spec!r}" in err, err
    assert "Traceback" not in err and err.count("error:") == 1


@judged
def test_acquire_with_members_status_list_and_membership_changes(
        cluster: LocalCluster, namespace: str, kubectl: KubectlRunner, api_client: ApiClientFactory) -> None:
    ns = ["-n", namespace]
    kubectl("create", "configmap", "cfg", *ns)
    taken = lockcore(cluster, "acquire", "cm/cfg", *ns, "--txn", "t1", "--ttl", "5m", "--member", "group:sre",
                     "--member", f"sa:{namespace}:deployer", "-o", "json", user="alice")
    assert taken.returncode == 0, taken.stderr
    crew = ["group:sre", f"sa:{namespace}:deployer", "user:alice"]
    assert json.loads(taken.stdout)["members"] == crew
    status = json.loads(lockcore(cluster, "status", "cm/cfg", *ns, "-o", "json", user="bob").stdout)
    assert status["members"] == crew and status["locked"]
    human = lockcore(cluster, "status", "cm/cfg", *ns, user="bob").stdout
    assert f"members {','.join(crew)}" in human, human
    listing = lockcore(cluster, "list", *ns, user="bob").stdout
    assert "MEMBERS" in listing and ",".join(crew) in listing, listing

    # bob, no member, is refused adding himself, with the webhook's own message (exit 1, one line).
    refused = lockcore(cluster, "members", "add", "cm/cfg", *ns, "--txn", "t1", "--member", "user:bob", user="bob")
    assert refused.returncode == 1 and "is identity-bound" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and "sre" not in refused.stderr
    added = lockcore(cluster, "members", "add", "cm/cfg", *ns, "--txn", "t1", "--member", "user:bob",
                     "-o", "json", user="alice")
    assert added.returncode == 0 and "user:bob" in json.loads(added.stdout)["members"], added.stderr
    annotated = kubectl("annotate", "cm", "cfg", *ns, "leasegate.io/transaction=t1", "by=bob", user="bob",
                        check=False)
    assert annotated.returncode == 0, annotated.stderr  # bob is a member now
    removed = lockcore(cluster, "members", "remove", "cm/cfg", *ns, "--txn", "t1", "--member", "user:bob",
                       "--member", "group:sre", user="bob")
    assert removed.returncode == 0 and f"sa:{namespace}:deployer, user:alice" in removed.stdout, removed.stderr
    denied = kubectl("annotate", "cm", "cfg", *ns, "by=bob-again", "--overwrite", user="bob", check=False)
    assert denied.returncode != 0 and "identity-bound" in denied.stderr
    principal = lockcore(cluster, "members", "remove", "cm/cfg", *ns, "--txn", "t1", "--member", "user:alice",
                         user="alice")
    assert principal.returncode == 2 and "stays a member" in principal.stderr, principal.stderr
    stored = client.CoordinationV1Api(api_client("admin")).read_namespaced_lease("lg.configmap.cfg", namespace)
    assert Members.decode(stored.metadata.annotations["leasegate.io/members"]).specs() == (
        f"sa:{namespace}:deployer", "user:alice")


@judged
def test_members_only_binds_the_lock_to_its_acquirer_and_unbound_locks_show_no_members(
        cluster: LocalCluster, namespace: str, kubectl: KubectlRunner) -> None:
    ns = ["-n", namespace]
    kubectl("create", "configmap", "mine", *ns)
    kubectl("create", "configmap", "open", *ns)
    only = lockcore(cluster, "acquire", "cm/mine", *ns, "--txn", "t1", "--ttl", "5m", "--members-only", user="alice")
    assert only.returncode == 0 and "members user:alice" in only.stdout, only.stderr
    plain = lockcore(cluster, "acquire", "cm/open", *ns, "--txn", "t2", "--ttl", "5m", user="alice")
    assert plain.returncode == 0 and ", members" not in plain.stdout, plain.stderr
    items = {i["resource"]: i["members"] for i in json.loads(
        lockcore(cluster, "list", *ns, "-o", "json", user="alice").stdout)["items"]}
    assert items == {f"configmap/mine -n {namespace}": ["user:alice"], f"configmap/open -n {namespace}": None}
    # Cooperative (no members) as today: bob's write setting the annotation passes; identity-bound: refused.
    assert kubectl("annotate", "cm", "open", *ns, "leasegate.io/transaction=t2", user="bob",
                   check=False).returncode == 0
    assert kubectl("annotate", "cm", "mine", *ns, "leasegate.io/transaction=t1", user="bob",
                   check=False).returncode != 0


@judged
def test_members_change_needs_a_member_spec(cluster: LocalCluster, namespace: str) -> None:
    out = lockcore(cluster, "members", "add", "cm/x", "-n", namespace, "--txn", "t1", user="alice")
    assert out.returncode == 2 and "needs at least one --member" in out.stderr, out.stderr
