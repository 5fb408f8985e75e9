"""charts/leasegate installed into the real local kube-apiserver with the real helm.

The local control plane runs no kubelet, so the chart's Deployment never gets a
ready pod and its Service has no endpoints: exactly the situation in which the
API server applies the webhook's failurePolicy. These tests therefore show, for
real, what Fail and Ignore do, that kube-system and the release namespace are
never intercepted, that install/upgrade/uninstall work and leave nothing
behind, and what the chart's service account may do (RBAC on).

Every webhook registered here is scoped (namespaceSelector) to namespaces
carrying this test's label, so other tests of the session are never affected.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client

from lockcore.ledger import REPORT_NAME, ledger_entries
from lockcore.naming import LeaseRef
from tests.support.cluster import KubectlRunner
from tests.support.helm import CHART, SCOPE_LABEL, helm, value_args
from tools.localcluster import LocalCluster
from webhook.apiserver import ApiServer
from webhook.audit import EventRecorder
from webhook.ledger import Ledger
from webhook.outcome import Reason, Verdict
from webhook.review import AdmissionRequest
from webhook.settings import EnforcementMode, EventSettings, LedgerSettings

pytestmark = pytest.mark.integration

SCOPED_WEBHOOK_RESOURCES = [
    {"apiGroups": [""], "resources": ["configmaps", "secrets"]},
    {"apiGroups": ["apps"], "resources": ["deployments"]},
]


@pytest.fixture(scope="module")
def endpoint_routing(cluster: LocalCluster) -> None:
    """Refuse to register Service-backed webhooks unless the API server resolves
    Services through EndpointSlices: otherwise it would dial the ClusterIP
    (10.0.0.x), an address off this machine."""
    cmdlines = []
    for proc in cluster.processes:
        try:
            cmdlines.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0"))
        except OSError:
            continue
    apiservers = [c for c in cmdlines if c and c[0].endswith(b"kube-apiserver")]
    assert apiservers, "could not find the local kube-apiserver process"
    assert b"--enable-aggregator-routing=true" in apiservers[0], (
        "tools/localcluster.py must start kube-apiserver with --enable-aggregator-routing=true")


class Release:
    """One helm release of the chart in its own namespace, scoped to labelled namespaces."""

    def __init__(self, cluster: LocalCluster, kubectl: KubectlRunner, tmp_path: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.cluster = cluster
        self.kubectl = kubectl
        self.tmp_path = tmp_path
        self.name = f"lg{suffix}"
        self.namespace = f"lg-chart-{suffix}"
        self.scope = suffix
        self.fullname = f"{self.name}-leasegate"
        self.vwc_name = f"{self.namespace}-{self.fullname}"
        self.installed = False

    def values(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        base: dict[str, Any] = {
            "webhook": {"namespaceSelector": {"matchLabels": {SCOPE_LABEL: self.scope}},
                        "resources": SCOPED_WEBHOOK_RESOURCES},
            "metrics": {"dashboard": {"enabled": True}},
            # Optional objects on, so the API server's own validation sees them too.
            "networkPolicy": {"enabled": True, "admissionFrom": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]},
        }
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return base

    def helm(self, *args: str, check: bool = True) -> str:
        result = helm(*args, kubeconfig=self.cluster.kubeconfig, check=check, timeout=60)
        return result.stdout + result.stderr

    def install(self, extra: dict[str, Any] | None = None) -> str:
        out = self.helm("install", self.name, str(CHART), "-n", self.namespace, "--create-namespace",
                        *value_args(self.values(extra), tmp_dir=self.tmp_path))
        self.installed = True
        return out

    def upgrade(self, extra: dict[str, Any] | None = None) -> str:
        return self.helm("upgrade", self.name, str(CHART), "-n", self.namespace,
                         *value_args(self.values(extra), tmp_dir=self.tmp_path))

    def uninstall(self) -> None:
        if self.installed:
            self.helm("uninstall", self.name, "-n", self.namespace)
            self.installed = False

    def get(self, kind: str, name: str, namespaced: bool = True) -> dict[str, Any]:
        args = ["get", kind, name, "-o", "json"]
        if namespaced:
            args += ["-n", self.namespace]
        data: dict[str, Any] = json.loads(self.kubectl(*args).stdout)
        return data

    def webhook(self) -> dict[str, Any]:
        hook: dict[str, Any] = self.get("validatingwebhookconfiguration", self.vwc_name, namespaced=False)[
            "webhooks"][0]
        return hook


@pytest.fixture
def release(cluster: LocalCluster, kubectl: KubectlRunner, tmp_path: Path,
            endpoint_routing: None) -> Iterator[Release]:
    rel = Release(cluster, kubectl, tmp_path)
    try:
        yield rel
    finally:
        rel.uninstall()
        kubectl("delete", "namespace", rel.namespace, "--wait=false", "--ignore-not-found", check=False)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _certs(pem_bundle: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem_bundle)


# -- install, upgrade, uninstall ------------------------------------------------------------

CHART_OBJECTS = [
    ("deployment", True), ("service", True), ("serviceaccount", True), ("secret", True),
    ("poddisruptionbudget", True), ("configmap", True), ("networkpolicy", True),
    ("clusterrole", False), ("clusterrolebinding", False), ("validatingwebhookconfiguration", False),
]


def _owned(release: Release) -> list[str]:
    """Every object (namespaced in the release namespace, or cluster-scoped) labelled as the release's."""
    selector = f"app.kubernetes.io/instance={release.name}"
    found: list[str] = []
    namespaced = release.kubectl(
        "get", "deployments,replicasets,pods,services,endpointslices,serviceaccounts,secrets,configmaps,"
        "poddisruptionbudgets,networkpolicies,roles,rolebindings", "-n", release.namespace, "-l", selector, "-o", "name").stdout
    found += namespaced.split()
    cluster_scoped = release.kubectl(
        "get", "clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations",
        "-l", selector, "-o", "name").stdout
    found += cluster_scoped.split()
    # And by name, in case a label went missing.
    for kind in ("clusterrole", "clusterrolebinding", "validatingwebhookconfiguration"):
        result = release.kubectl("get", kind, release.vwc_name, "-o", "name", "--ignore-not-found")
        found += result.stdout.split()
    helm_state = release.kubectl("get", "secrets", "-n", release.namespace, "-l", f"owner=helm,name={release.name}",
                                 "-o", "name").stdout
    found += helm_state.split()
    return sorted(set(found))


def test_install_upgrade_uninstall_leave_nothing_behind(release: Release) -> None:
    release.install()

    # Every object was accepted by the API server's own validation and exists.
    for kind, namespaced in CHART_OBJECTS:
        name = {"secret": f"{release.fullname}-tls", "configmap": f"{release.fullname}-dashboard"}.get(
            kind, release.vwc_name if not namespaced else release.fullname)
        obj = release.get(kind, name, namespaced=namespaced)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
    deployment = release.get("deployment", release.fullname)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True

    hook = release.webhook()
    secret = release.get("secret", f"{release.fullname}-tls")
    ca_bundle = hook["clientConfig"]["caBundle"]
    assert base64.b64decode(ca_bundle) == base64.b64decode(secret["data"]["ca.crt"])
    (ca,) = _certs(base64.b64decode(ca_bundle))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    serving.verify_directly_issued_by(ca)

    # An ordinary upgrade keeps the certificate and the caBundle; the new value reaches the pods.
    release.upgrade({"config": {"mode": "warn"}})
    assert release.webhook()["clientConfig"]["caBundle"] == ca_bundle
    assert release.get("secret", f"{release.fullname}-tls")["data"] == secret["data"]
    env = {e["name"]: e.get("value") for e in
           release.get("deployment", release.fullname)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LEASEGATE_MODE"] == "warn"

    # Rotation: a new CA and certificate, and a caBundle trusting old and new during the switch.
    release.upgrade({"config": {"mode": "warn"}, "tls": {"selfSigned": {"generation": 2}}})
    rotated = release.get("secret", f"{release.fullname}-tls")
    (new_ca,) = _certs(base64.b64decode(rotated["data"]["ca.crt"]))
    assert new_ca != ca
    x509.load_pem_x509_certificate(base64.b64decode(rotated["data"]["tls.crt"])).verify_directly_issued_by(new_ca)
    bundle = _certs(base64.b64decode(release.webhook()["clientConfig"]["caBundle"]))
    assert [c.subject for c in bundle] == [new_ca.subject, ca.subject]
    assert bundle[0] == new_ca and bundle[1] == ca
    # The next upgrade with the same generation keeps the new pair and trusts only the new CA.
    release.upgrade({"config": {"mode": "warn"}, "tls": {"selfSigned": {"generation": 2}}})
    assert release.get("secret", f"{release.fullname}-tls")["data"] == rotated["data"]
    assert _certs(base64.b64decode(release.webhook()["clientConfig"]["caBundle"])) == [new_ca]
    # --reuse-values keeps generation 2 (stored on the Secret): no second rotation.
    release.helm("upgrade", release.name, str(CHART), "-n", release.namespace, "--reuse-values",
                 "--set", "config.mode=dryrun")
    assert release.get("secret", f"{release.fullname}-tls")["data"] == rotated["data"]
    assert _certs(base64.b64decode(release.webhook()["clientConfig"]["caBundle"])) == [new_ca]

    assert _owned(release), "the release's objects should be found by the leftover check"
    release.uninstall()
    _wait_for(lambda: not _owned(release), f"nothing of release {release.name} left: {_owned(release)}")


def test_install_rejects_bad_values_before_touching_the_cluster(release: Release) -> None:
    out = release.helm("install", release.name, str(CHART), "-n", release.namespace, "--create-namespace",
                       "--set", "webhook.timeoutSeconds=60", check=False)
    assert "at '/webhook/timeoutSeconds': maximum: got 60, want 30" in out
    assert not release.kubectl("get", "validatingwebhookconfiguration", release.vwc_name,
                               "--ignore-not-found", "-o", "name").stdout.strip()


# -- failurePolicy, for real -----------------------------------------------------------------------


def _create_configmap(kubectl: KubectlRunner, namespace: str, name: str) -> tuple[bool, str]:
    result = kubectl("create", "configmap", name, "-n", namespace, "--from-literal=k=v", check=False)
    return result.returncode == 0, result.stdout + result.stderr


def _audit_annotations(cluster: LocalCluster, namespace: str, name: str, verb: str = "create") -> dict[str, str]:
    annotations: dict[str, str] = {}
    for line in cluster.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef", {})
        if (event.get("verb") == verb and ref.get("resource") == "configmaps"
                and ref.get("namespace") == namespace and ref.get("name") == name):
            annotations.update(event.get("annotations", {}))
    return annotations


@pytest.fixture
def labelled(kubectl: KubectlRunner, release: Release, namespace: str) -> Iterator[list[str]]:
    """Label the test namespace, kube-system and the release namespace with the webhook's scope,
    so only the chart's always-on exclusion can keep the latter two out."""
    kubectl("create", "namespace", release.namespace)
    targets = [namespace, "kube-system", release.namespace]
    for ns in targets:
        kubectl("label", "namespace", ns, f"{SCOPE_LABEL}={release.scope}", "--overwrite")
    try:
        yield targets
    finally:
        for ns in targets:
            kubectl("label", "namespace", ns, f"{SCOPE_LABEL}-", check=False)


def test_failure_policy_fail_refuses_and_ignore_allows(
    release: Release, kubectl: KubectlRunner, cluster: LocalCluster, namespace: str, labelled: list[str]
) -> None:
    kubectl("create", "configmap", "existing", "-n", namespace, "--from-literal=k=v")
    kubectl("create", "configmap", "marked", "-n", namespace, "--from-literal=k=v")
    # Marked as acquire leaves a locked object (no Lease: the webhook would allow it, if it answered).
    kubectl("label", "configmap", "marked", "leasegate.io/locked=t1", "-n", namespace)

    release.install({"webhook": {"failurePolicy": "Fail"}})
    hook = release.webhook()
    assert hook["failurePolicy"] == "Fail"

    # Fail: the API server cannot reach the webhook (no ready endpoint), so a marked object's writes are refused.
    attempt = iter(range(1000))
    last: list[str] = [""]

    def refused() -> bool:
        result = kubectl("annotate", "configmap", "marked", f"n={next(attempt)}", "--overwrite", "-n", namespace,
                         check=False)
        last[0] = result.stdout + result.stderr
        return result.returncode != 0

    _wait_for(refused, "the API server to apply the new webhook configuration")
    assert 'failed calling webhook "locks.leasegate.io"' in last[0], last[0]
    # Creates never wait on the webhook (the reservation policy judges them in the API server).
    ok, out = _create_configmap(kubectl, namespace, "created-during-outage")
    assert ok, out
    kubectl("create", "deployment", "web", "--image=nginx", "-n", namespace)
    # Objects nobody locked (no marker) are never sent to the webhook: their writes do not depend on it.
    kubectl("annotate", "configmap", "existing", "note=x", "-n", namespace)
    kubectl("create", "serviceaccount", "unmatched", "-n", namespace)
    # kube-system and the release namespace carry the scope label too, yet are never intercepted.
    for ns in ("kube-system", release.namespace):
        name = f"never-intercepted-{release.scope}"
        kubectl("create", "configmap", name, "-n", ns, "--from-literal=k=v")
        kubectl("label", "configmap", name, "leasegate.io/locked=t1", "-n", ns)
        result = kubectl("annotate", "configmap", name, "x=1", "-n", ns, check=False)
        assert result.returncode == 0, f"write in {ns} was intercepted: {result.stderr}"
        kubectl("delete", "configmap", name, "-n", ns)
    # Exempt identities are skipped before the call (matchConditions), so they never depend on it.
    result = kubectl("annotate", "configmap", "marked", "by=kcm", "-n", namespace,
                     "--as=system:kube-controller-manager", "--as-group=system:masters", check=False)
    assert result.returncode == 0, result.stderr

    # Ignore: the same writes now go through; the audit log shows the webhook failed open.
    release.upgrade({"webhook": {"failurePolicy": "Ignore"}})
    assert release.webhook()["failurePolicy"] == "Ignore"
    env = {e["name"]: e.get("value") for e in
           release.get("deployment", release.fullname)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LEASEGATE_LOOKUP_FAILURE_POLICY"] == "allow"

    def allowed() -> bool:
        return kubectl("annotate", "configmap", "marked", f"open={next(attempt)}", "--overwrite", "-n", namespace,
                       check=False).returncode == 0

    _wait_for(allowed, "failurePolicy=Ignore to take effect")
    annotations = _audit_annotations(cluster, namespace, "marked", verb="patch")
    failed_open = {k: v for k, v in annotations.items() if k.startswith("failed-open.validating.webhook")}
    assert list(failed_open.values()) == ["locks.leasegate.io"], annotations
    kubectl("delete", "configmap", "existing", "marked", "-n", namespace)

    release.uninstall()
    # Without the webhook, nothing is refused any more.
    _wait_for(lambda: _create_configmap(kubectl, namespace, f"after-{uuid.uuid4().hex[:4]}")[0], "uninstall")
    assert not [p for p in json.loads(kubectl("get", "validatingadmissionpolicies", "-o", "json").stdout)["items"]
                if p["metadata"]["name"].endswith(release.fullname)
                and not p["metadata"]["name"].startswith("keepalive.")], "uninstall left a policy behind"


# -- RBAC: exactly what the chart grants -----------------------------------------------------------


_CAN_I_ROW = re.compile(r"^(\S*)\s*\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*$")


def _can_i_list(kubectl: KubectlRunner, user: str, namespace: str) -> set[tuple[str, str, str]]:
    """(resource or URL, resourceNames, verb) rows of `kubectl auth can-i --list` for a service account."""
    sa_namespace = user.split(":")[2]
    out = kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={user}",
                  "--as-group=system:serviceaccounts", f"--as-group=system:serviceaccounts:{sa_namespace}",
                  "--as-group=system:authenticated").stdout
    rows: set[tuple[str, str, str]] = set()
    lines = out.splitlines()
    assert lines and lines[0].split()[0] == "Resources", out
    for line in lines[1:]:
        match = _CAN_I_ROW.match(line)
        assert match, f"unparsed can-i row: {line!r}"
        resource, urls, names, verbs = match.groups()
        for verb in verbs.split():
            rows.add((resource or urls, names, verb))
    return rows


def test_service_account_can_do_exactly_what_the_chart_grants(release: Release, kubectl: KubectlRunner,
                                                                namespace: str) -> None:
    release.install()
    sa = f"system:serviceaccount:{release.namespace}:{release.fullname}"
    nobody = f"system:serviceaccount:{release.namespace}:nobody-{release.scope}"
    extra = {}
    for ns in (namespace, release.namespace):
        granted = _can_i_list(kubectl, sa, ns)
        baseline = _can_i_list(kubectl, nobody, ns)
        extra[ns] = granted - baseline
        assert baseline <= granted
    expected = {
        ("leases.coordination.k8s.io", "", "get"), ("leases.coordination.k8s.io", "", "list"),
        ("leases.coordination.k8s.io", "", "watch"),
        ("events", "", "create"), ("events", "", "get"), ("events", "", "patch"),
        ("namespaces", "", "get"),
        *((f"{plural}.openreports.io", "", verb) for plural in ("reports", "clusterreports")
          for verb in ("get", "create", "update")),
        ("validatingwebhookconfigurations.admissionregistration.k8s.io", release.vwc_name, "get"),
        ("validatingwebhookconfigurations.admissionregistration.k8s.io", release.vwc_name, "patch"),
    }
    assert extra[namespace] == expected, extra[namespace]
    assert extra[release.namespace] == expected, extra[release.namespace]

    def can(*args: str) -> bool:
        result = kubectl("auth", "can-i", *args, f"--as={sa}", check=False)
        return result.stdout.strip() == "yes"

    assert can("watch", "leases.coordination.k8s.io", "--all-namespaces")
    assert can("patch", f"validatingwebhookconfigurations/{release.vwc_name}")
    for denied in (["create", "leases.coordination.k8s.io", "-n", namespace],
                   ["update", "leases.coordination.k8s.io", "-n", namespace],
                   ["delete", "leases.coordination.k8s.io", "-n", namespace],
                   ["get", "secrets", "-n", release.namespace],
                   ["list", "configmaps", "-n", namespace],
                   ["patch", "validatingwebhookconfigurations/someone-else"],
                   ["list", "validatingwebhookconfigurations"],
                   ["delete", f"validatingwebhookconfigurations/{release.vwc_name}"],
                   ["list", "namespaces"],
                   ["delete", "events", "-n", namespace]):
        assert not can(*denied), denied

    assert not can("delete", "reports.openreports.io", "-n", namespace)
    assert not can("list", "clusterreports.openreports.io")

    # Turning audit Events, the ledger and namespace modes off takes those grants away.
    release.upgrade({"config": {"events": False, "namespaceModeLabel": "", "ledgerEnabled": False}})
    assert not can("create", "events", "-n", namespace)
    assert not can("update", "reports.openreports.io", "-n", namespace)
    assert not can("get", f"namespaces/{namespace}")
    assert can("get", "leases.coordination.k8s.io", "-n", namespace)
    assert yaml.safe_load(release.helm("get", "values", release.name, "-n", release.namespace, "-o", "yaml"))


OPENREPORTS_CRDS = ("reports.openreports.io", "clusterreports.openreports.io")


def _crd_owner(release: Release, name: str) -> str | None:
    """The Helm release a CRD belongs to ("" if none), None when the CRD does not exist."""
    found = release.kubectl("get", "crd", name, "-o", "json", "--ignore-not-found").stdout
    if not found.strip():
        return None
    return str((json.loads(found)["metadata"].get("annotations") or {}).get("meta.helm.sh/release-name", ""))


def test_openreports_crds_installed_only_when_absent_and_kept(release: Release) -> None:
    # A cluster that has the CRDs (Kyverno, Policy Reporter, an earlier release) keeps them as they
    # are; one that has none gets the vendored ones, kept on uninstall (deleting a CRD deletes
    # every report: the audit trail).
    before = {name: _crd_owner(release, name) for name in OPENREPORTS_CRDS}
    release.install()
    manifest = release.helm("get", "manifest", release.name, "-n", release.namespace)
    after = {name: _crd_owner(release, name) for name in OPENREPORTS_CRDS}
    if all(owner is None for owner in before.values()):
        assert "kind: CustomResourceDefinition" in manifest
        assert after == {name: release.name for name in OPENREPORTS_CRDS}
    else:
        assert "kind: CustomResourceDefinition" not in manifest
        assert after == before
    release.upgrade({"config": {"mode": "warn"}})
    assert {name: _crd_owner(release, name) for name in OPENREPORTS_CRDS} == after
    release.uninstall()
    assert all(_crd_owner(release, name) is not None for name in OPENREPORTS_CRDS)


def _as_chart(release: Release, kubectl: KubectlRunner) -> client.ApiClient:
    """A client authenticated exactly as the chart's service account (a real token)."""
    token = kubectl("create", "token", release.fullname, "-n", release.namespace).stdout.strip()
    cfg = client.Configuration()
    cfg.host = release.cluster.server
    cfg.ssl_ca_cert = str(release.cluster.ca_file)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def _refusal(namespace: str) -> tuple[AdmissionRequest, Verdict]:
    request = AdmissionRequest(uid="u", operation="UPDATE", group="", version="v1", kind="ConfigMap",
                               resource="configmaps", namespace=namespace, name="cfg", username="bob")
    verdict = Verdict(allowed=False, reason=Reason.NOT_IN_TRANSACTION, mode=EnforcementMode.DENY, code=403,
                      lease=LeaseRef(namespace, "lg.configmap.cfg"), holder="t1", would_deny=True)
    return request, verdict


def test_service_account_rbac_suffices_for_the_ledger(release: Release, kubectl: KubectlRunner,
                                                      namespace: str) -> None:
    # Two ledger writers (two replicas), as the chart's service account, create the Report and
    # merge into it: get, create and update are enough, and nothing fails.
    release.install()
    as_chart = _as_chart(release, kubectl)
    outcomes: list[tuple[str, int]] = []
    replicas = [Ledger(lambda: ApiServer(as_chart), LedgerSettings(flush_seconds=0.1),
                       on_outcome=lambda outcome, n: outcomes.append((outcome, n))) for _ in range(2)]
    for i in range(5):
        replicas[i % 2].record(*_refusal(namespace))
    for replica in replicas:
        replica.close()
    report = json.loads(kubectl("get", "reports.openreports.io", REPORT_NAME, "-n", namespace, "-o", "json").stdout)
    (entry,) = ledger_entries([report])
    assert (entry.write.user, entry.write.name, entry.count) == ("bob", "cfg", 5)
    assert sum(n for outcome, n in outcomes if outcome == "written") == 5, outcomes
    assert not [o for o in outcomes if o[0] in ("failed", "dropped", "requeued")], outcomes


def test_service_account_rbac_suffices_for_shared_events(release: Release, kubectl: KubectlRunner,
                                                          namespace: str) -> None:
    # The webhook's Event recorder, authenticated exactly as the chart's service
    # account (a real token), creates a WriteBlocked Event and, as a second
    # replica would, adds to its count: the chart's RBAC must allow all of it.
    release.install()
    as_chart = _as_chart(release, kubectl)
    request, verdict = _refusal(namespace)
    outcomes: list[str] = []
    replicas = [EventRecorder(lambda: ApiServer(as_chart), EventSettings(), flush_seconds=0.2,
                              on_outcome=outcomes.append) for _ in range(2)]
    for i in range(4):
        replicas[i % 2].record(request, verdict)
    for replica in replicas:
        replica.drain(timeout=10)

    def counted() -> bool:
        events = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector",
                                    "reason=WriteBlocked", "-o", "json").stdout)["items"]
        return [e.get("count") for e in events] == [4]

    _wait_for(counted, "one WriteBlocked Event counting all 4 blocked writes")
    assert "failed" not in outcomes, outcomes
