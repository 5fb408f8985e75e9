"""charts/leasegate rendered by the real helm binary: lint, template, schema, invariants.

No cluster here; tests/integration/charts installs the same chart into a real
kube-apiserver.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from lockcore.kube import ENV_PREFIX
from lockcore.profiles import LockProfile, Profile
from lockcore.settings import LockSettings, variables
from tests.support.helm import CHART, by_kind, container_env, lint, one, template, template_error
from webhook.policy import ALL_RESOURCES, admission_policies, keepalive_policies
from webhook.registration import DEFAULT_RESOURCES, chart_file, skip_identities, webhook_configuration
from webhook.settings import DecisionPolicy, Enforcement, EnforcementMode, WebhookSettings

# Every documented option, as a values overlay (name -> values).
OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"certManager": {"enabled": True}},
    "cert-manager-cluster-issuer": {
        "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer",
                                                         "group": "cert-manager.io"}}},
    "existing-secret": {"tls": {"existingSecret": "my-webhook-tls",
                                "caBundle": base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "dashboard": {"metrics": {"dashboard": {"enabled": True, "namespace": "monitoring"}}},
    "warn-mode": {"config": {"mode": "warn"}},
    "dryrun-mode": {"config": {"mode": "dryrun"}},
    "janus-profile": {"config": {"profile": "janus"}},
    "ignore-policy": {"webhook": {"failurePolicy": "Ignore"}},
    "consistent-lookups": {"config": {"leaseLookup": "consistent"}},
    "no-events": {"config": {"events": False}},
    "no-ledger": {"config": {"ledgerEnabled": False}},
    "no-namespace-modes": {"config": {"namespaceModeLabel": ""}},
    "single-replica": {"replicaCount": 1},
    "hard-anti-affinity": {"podAntiAffinity": "hard"},
    "selectors": {"webhook": {
        "namespaceSelector": {"matchLabels": {"team": "shop"},
                              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}]},
        "objectSelector": {"matchLabels": {"leasegate.io/locked": "true"}},
        "matchConditions": [{"name": "not-dry-run-bots",
                             "expression": "!request.userInfo.username.startsWith('bot:')"}],
        "excludeNamespaces": ["monitoring"]}},
    "custom-resources-crd": {"webhook": {"resources": [{"apiGroups": ["example.com"], "resources": ["widgets"]}]}},
    "external-sa": {"serviceAccount": {"create": False, "name": "preexisting"}, "rbac": {"create": False}},
    "digest-image": {"image": {"digest": "sha256:" + "a" * 64}},
    "network-policy": {"networkPolicy": {
        "enabled": True, "admissionFrom": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}},
    "network-policy-open": {"networkPolicy": {"enabled": True}},
}

RENDERED: dict[str, list[dict[str, Any]]] = {}


def rendered(option: str) -> list[dict[str, Any]]:
    if option not in RENDERED:
        RENDERED[option] = template(OPTIONS[option])
    return RENDERED[option]


def webhooks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = one(docs, "ValidatingWebhookConfiguration")["webhooks"]
    return hooks


def objects_hook(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook judging updates and deletes of (marked) objects: always the first."""
    return webhooks(docs)[0]


# -- lint and template ------------------------------------------------------------


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_lint_passes(option: str) -> None:
    out = lint(OPTIONS[option])
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_template_renders_expected_kinds(option: str) -> None:
    docs = rendered(option)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ValidatingWebhookConfiguration"} <= kinds
    for doc in docs:
        assert doc["metadata"]["name"], doc
        if doc["kind"] not in {"ValidatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding",
                               "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                               "CustomResourceDefinition"}:
            assert doc["metadata"].get("namespace"), f"{doc['kind']} must name its namespace"
    assert ("ServiceMonitor" in kinds) == (option == "service-monitor")
    assert ("ConfigMap" in kinds) == (option == "dashboard")
    assert ("Certificate" in kinds) == option.startswith("cert-manager")
    assert ("PodDisruptionBudget" in kinds) == (option != "single-replica")
    assert ("ClusterRole" in kinds) == (option != "external-sa")


def test_chart_requires_kubernetes_with_match_conditions() -> None:
    from tests.support.helm import helm

    result = helm("template", "lg", str(CHART), "--kube-version", "1.29.0", check=False)
    assert result.returncode != 0 and "kubeVersion" in result.stderr, result.stderr
    helm("template", "lg", str(CHART), "--kube-version", "1.30.0")


# -- the webhook configuration ------------------------------------------------------


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_webhook_never_matches_locks_events_or_reviews(option: str) -> None:
    """Lock Leases only by their label; every other write only of a marked object, or (janus, no markers)
    never of Leases, Events or reviews."""
    for hook in webhooks(rendered(option)):
        if hook["name"].startswith("leases."):
            # Lock Leases only (by their transaction label), never the other Leases.
            assert hook["rules"] == [{"apiGroups": ["coordination.k8s.io"], "apiVersions": ["*"],
                                      "resources": ["leases"], "operations": ["CREATE", "UPDATE", "DELETE"],
                                      "scope": "*"}]
            assert hook["objectSelector"] == {"matchExpressions": [{"key": "leasegate.io/transaction",
                                                                    "operator": "Exists"}]}
            continue
        marked = {"key": "leasegate.io/locked", "operator": "Exists"} in \
            (hook["objectSelector"].get("matchExpressions") or [])
        for rule in hook["rules"]:
            assert marked or "*" not in rule["apiGroups"]
            assert not {"coordination.k8s.io", "events.k8s.io"} & set(rule["apiGroups"])
            for resource in rule["resources"]:
                base = resource.split("/")[0]
                assert base not in ({"leases", "events"} if marked else {"*", "leases", "events"})
                assert not base.endswith("reviews")


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_webhook_always_excludes_kube_system_and_release_namespace(option: str) -> None:
    for hook in webhooks(rendered(option)):
        expressions = hook["namespaceSelector"]["matchExpressions"]
        excluded = [e for e in expressions
                    if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"]
        assert len(excluded) == 1
        # The Lease webhook keeps the release namespace: the lock namespace of cluster-scoped objects.
        release = set() if hook["name"].startswith("leases.") else {"leasegate-system"}
        assert {"kube-system"} | release <= set(excluded[0]["values"])
        assert not hook["name"].startswith("leases.") or "leasegate-system" not in excluded[0]["values"]


def test_release_namespace_excluded_whatever_it_is() -> None:
    docs = template(namespace="platform-locks")
    hook = objects_hook(docs)
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert "platform-locks" in expr["values"] and "kube-system" in expr["values"]
    # Even if the user empties every list of exemptions.
    docs = template({"config": {"exemptNamespaces": []}}, namespace="elsewhere")
    (expr,) = webhooks(docs)[0]["namespaceSelector"]["matchExpressions"]
    assert expr["values"] == ["kube-system", "elsewhere"]


def test_user_selectors_are_merged_not_replaced() -> None:
    hook = objects_hook(rendered("selectors"))
    selector = hook["namespaceSelector"]
    assert selector["matchLabels"] == {"team": "shop"}
    assert {"key": "tier", "operator": "In", "values": ["prod"]} in selector["matchExpressions"]
    always = selector["matchExpressions"][-1]
    assert always["operator"] == "NotIn"
    assert {"kube-system", "leasegate-system", "monitoring", "kube-public"} <= set(always["values"])
    assert hook["objectSelector"] == {"matchLabels": {"leasegate.io/locked": "true"}, "matchExpressions": [
        {"key": "leasegate.io/locked", "operator": "Exists"}]}
    names = [c["name"] for c in hook["matchConditions"]]
    assert names == ["leasegate-skip-exempt-users", "leasegate-skip-exempt-groups", "not-dry-run-bots",
                     "leasegate-marked-before", "leasegate-skip-principal-release"]


@pytest.mark.parametrize("value", ["348e09", "939e72", "0x1F", "true", "1_000", "012"])
def test_selector_label_values_that_look_like_numbers_stay_strings(value: str) -> None:
    """A label value is a string whatever it looks like (CI once drew the random
    suffix "348e09", which YAML 1.1 reads as 3.48e11): it must pass the schema and
    reach the rendered webhook unchanged."""
    docs = template({"webhook": {"namespaceSelector": {"matchLabels": {"scope": value}}}})
    for hook in webhooks(docs):
        assert hook["namespaceSelector"]["matchLabels"] == {"scope": value}


OVERLAYS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "janus": {"config": {"profile": "janus"}},
    "require members": {"config": {"requireMembers": True}},
    "warn mode, custom annotation": {"config": {"mode": "warn", "txnAnnotation": "example.com/txn"}},
    "dryrun, narrowed kinds": {"config": {"mode": "dryrun", "lockNamespace": "locks"},
                               "webhook": {"resources": [{"apiGroups": [""], "resources": ["configmaps"]}]}},
    "no exempt identities": {"config": {"exemptUsers": [], "exemptGroups": [], "namespaceModeLabel": ""}},
}


def _settings(values: dict[str, Any]) -> tuple[WebhookSettings, list[dict[str, Any]] | None]:
    config, hook = values.get("config", {}), values.get("webhook", {})
    lock = LockSettings(profile=Profile(config.get("profile", "leasegate")),
                        txn_annotation=config.get("txnAnnotation", "leasegate.io/transaction"),
                        lock_namespace=config.get("lockNamespace", "leasegate-system"))
    policy = DecisionPolicy(lock=lock, require_members=config.get("requireMembers", False),
                            exempt_users=tuple(config.get("exemptUsers", DecisionPolicy.exempt_users)),
                            exempt_groups=tuple(config.get("exemptGroups", DecisionPolicy.exempt_groups)))
    enforcement = Enforcement(namespace_mode_label=config.get("namespaceModeLabel", "leasegate.io/enforcement"),
                              mode=EnforcementMode(config.get("mode", "deny")))
    return WebhookSettings(policy=policy, enforcement=enforcement), hook.get("resources")


@pytest.mark.parametrize("overlay", OVERLAYS, ids=list(OVERLAYS))
def test_chart_renders_the_registration_the_tests_use(overlay: str) -> None:
    """One registration: the chart's webhooks and policies are webhook.registration's and
    webhook.policy's, field for field, for every value set here."""
    docs = template(OVERLAYS[overlay])
    settings, resources = _settings(OVERLAYS[overlay])
    vwc = one(docs, "ValidatingWebhookConfiguration")
    service = one(docs, "Service")["metadata"]["name"]
    ca = base64.b64decode(vwc["webhooks"][0]["clientConfig"]["caBundle"])
    excluded = list(dict.fromkeys(["kube-system", "leasegate-system", *settings.policy.exempt_namespaces]))
    lease_selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                            "values": list(dict.fromkeys(["kube-system", *settings.policy.exempt_namespaces]))}]}
    exempt = skip_identities(settings.policy.exempt_users, settings.policy.exempt_groups)
    expected = webhook_configuration(
        vwc["metadata"]["name"], ca, service=("leasegate-system", service, 443),
        profile=settings.lock.lock_profile, resources=resources, require_members=settings.policy.require_members,
        namespace_selector={"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                  "values": excluded}]},
        lease_namespace_selector=lease_selector, match_conditions=exempt)
    assert vwc["webhooks"] == expected["webhooks"]
    fences = settings.lock.lock_profile.fences
    assert [h["name"] for h in vwc["webhooks"]] == (
        ["locks.leasegate.io", "leases.locks.leasegate.io"] if fences else ["locks.leasegate.io"])
    rendered = [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    policies = admission_policies(
        f"reservations.{vwc['metadata']['name']}", lock_namespace=settings.lock.lock_namespace,
        txn_label=settings.lock.lock_profile.txn_label, txn_annotation=settings.lock.txn_annotation,
        mode=settings.enforcement.mode.value, resources=resources or ALL_RESOURCES, namespace_selector=lease_selector,
        cluster_object_selector={}, namespace_mode_label=settings.enforcement.namespace_mode_label, match_conditions=exempt)
    strip = [{**d, "metadata": {"name": d["metadata"]["name"]}} for d in rendered]
    policies += keepalive_policies(f"keepalive.reservations.{vwc['metadata']['name']}")
    want = [{**d, "metadata": {"name": d["metadata"]["name"]}} for d in policies] if fences else []
    assert sorted(strip, key=lambda d: d["metadata"]["name"]) == sorted(want, key=lambda d: d["metadata"]["name"])


def test_the_charts_copy_of_the_admission_rules_is_current() -> None:
    """files/admission.json is what webhook.registration writes (`python -m webhook.registration`)."""
    assert json.loads((CHART / "files" / "admission.json").read_text()) == json.loads(json.dumps(chart_file()))


def test_chart_resources_are_the_registrations_defaults() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["webhook"]["resources"] == []
    assert chart_file()["defaultResources"]["leasegate"] == [dict(r) for r in DEFAULT_RESOURCES]


def test_unlocked_objects_never_reach_the_webhook_by_default() -> None:
    """Only marked objects' updates and deletes and lock Leases are sent; creates and scales go to the policy."""
    docs = rendered("default")
    objects, leases = webhooks(docs)
    assert objects["objectSelector"] == {"matchExpressions": [{"key": "leasegate.io/locked", "operator": "Exists"}]}
    assert {op for rule in objects["rules"] for op in rule["operations"]} == {"UPDATE", "DELETE"}
    covered = {(g, r) for rule in objects["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    # Every kind, custom resources included, and status writes of marked objects.
    assert covered == {("*", "*"), ("*", "*/status")}
    assert leases["failurePolicy"] == objects["failurePolicy"] == "Fail"
    policy = next(p for p in by_kind(docs, "ValidatingAdmissionPolicy")
                  if p["metadata"]["name"].startswith("reservations."))
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert {op for rule in rules for op in rule["operations"]} == {"CREATE", "UPDATE"}
    scale = {(g, r) for rule in rules if rule["operations"] == ["UPDATE"] for g in rule["apiGroups"]
             for r in rule["resources"]}
    assert scale == {("apps", "deployments/scale"), ("apps", "statefulsets/scale"), ("apps", "replicasets/scale"),
                     ("", "replicationcontrollers/scale")}
    assert policy["spec"]["failurePolicy"] == "Fail" and policy["spec"]["paramKind"]["kind"] == "Lease"


def test_skip_exempt_identities_can_be_turned_off() -> None:
    for hook in webhooks(template({"webhook": {"skipExemptIdentities": False}})):
        assert not any(c["name"].startswith("leasegate-skip-exempt") for c in hook.get("matchConditions", []))


# -- certificates -------------------------------------------------------------------


def _pem(b64: str) -> bytes:
    return base64.b64decode(b64)


def test_self_signed_certificate_is_valid_for_the_service() -> None:
    docs = rendered("default")
    secret = one(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(_pem(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(_pem(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    service = one(docs, "Service")["metadata"]["name"]
    assert f"{service}.leasegate-system.svc" in sans
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    for hook in webhooks(docs):
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o440}} in volumes


def test_cert_manager_mode() -> None:
    docs = rendered("cert-manager")
    assert not by_kind(docs, "Secret"), "cert-manager writes the Secret, not Helm"
    vwc = one(docs, "ValidatingWebhookConfiguration")
    assert all("caBundle" not in hook["clientConfig"] for hook in vwc["webhooks"])
    serving = [c for c in by_kind(docs, "Certificate") if not c["spec"].get("isCA")]
    assert len(serving) == 1
    cert = serving[0]
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"leasegate-system/{cert['metadata']['name']}")
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("secret", {}).get("secretName") == cert["spec"]["secretName"] for v in volumes)
    for hook in vwc["webhooks"]:
        assert f"{hook['clientConfig']['service']['name']}.leasegate-system.svc" in cert["spec"]["dnsNames"]
    # Own issuer chain only when none is given.
    assert len(by_kind(docs, "Issuer")) == 2
    given = rendered("cert-manager-cluster-issuer")
    assert not by_kind(given, "Issuer")
    assert one(given, "Certificate")["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


def test_existing_secret_mode() -> None:
    docs = rendered("existing-secret")
    assert not by_kind(docs, "Secret")
    for hook in webhooks(docs):
        assert hook["clientConfig"]["caBundle"] == OPTIONS["existing-secret"]["tls"]["caBundle"]
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("secret", {}).get("secretName") == "my-webhook-tls" for v in volumes)


# -- the pods -------------------------------------------------------------------------


def test_deployment_is_hardened_and_highly_available() -> None:
    docs = rendered("default")
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"https": 8443, "http-health": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/tmp" in mounts and not mounts["/tmp"].get("readOnly")
    assert mounts["/etc/leasegate/tls"]["readOnly"] is True
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    hard = one(rendered("hard-anti-affinity"), "Deployment")["spec"]["template"]["spec"]["affinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["podAntiAffinity"]


def test_image_reference() -> None:
    image = one(rendered("default"), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/leasegate/leasegate-webhook:0.1.0"
    image = one(rendered("digest-image"), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("@sha256:" + "a" * 64)


# -- the contract with webhook/settings.py -------------------------------------------------

# Settings as their variables (LEASEGATE_ dropped, lower case), which is what config.* keys become.
DERIVED = {"tls_cert_file", "tls_key_file", "service_name", "service_namespace", "webhook_config_name"}
# generated certificates are never used by the chart; in-cluster config in a pod.
NOT_CHART_KNOBS = {"cert_dir", "kubeconfig"}
# Chart defaults that differ from the webhook's on purpose: a container often sees every CPU of
# its node, so "two workers per CPU" (workers=0) would oversubscribe the pod's CPU limit.
DELIBERATE = {"workers": 2}
SETTINGS = {variable.name.removeprefix(ENV_PREFIX).lower(): variable for variable in variables(WebhookSettings)}


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def test_every_config_value_is_a_settings_variable_and_back() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    config_keys = {_snake(k) for k in values["config"]}
    assert config_keys <= SETTINGS.keys(), f"chart knobs the webhook lacks: {config_keys - SETTINGS.keys()}"
    missing = SETTINGS.keys() - config_keys - DERIVED - NOT_CHART_KNOBS
    assert not missing, f"settings the chart cannot set: {missing}"


def test_default_values_render_to_the_webhooks_own_defaults() -> None:
    env = container_env(rendered("default"))
    settings = WebhookSettings.from_env(env)
    defaults = WebhookSettings()
    for name, variable in SETTINGS.items():
        if name in DERIVED | NOT_CHART_KNOBS:
            continue
        assert variable.read(settings) == DELIBERATE.get(name, variable.read(defaults)), name
    assert settings.lock == defaults.lock
    serving = settings.serving
    assert serving.tls_cert_file == "/etc/leasegate/tls/tls.crt"
    assert serving.tls_key_file == "/etc/leasegate/tls/tls.key"
    assert serving.service_namespace == "leasegate-system"
    assert serving.webhook_config_name == one(rendered("default"), "ValidatingWebhookConfiguration")[
        "metadata"]["name"]


def test_values_reach_the_webhook() -> None:
    env = container_env(template({"config": {
        "mode": "warn", "exemptUsers": ["ci-bot", "system:serviceaccount:ops:deployer"],
        "exemptNamespaces": [], "lockNamespace": "locks", "txnAnnotation": "example.com/txn",
        "profile": "janus", "clockSkewSeconds": 3.5,
        "leaseLookup": "consistent", "events": False, "maxBodyBytes": 1048576,
        "workers": 3, "threads": 8, "gracefulTimeoutSeconds": 10, "logLevel": "DEBUG"}}))
    s = WebhookSettings.from_env(env)
    assert s.enforcement.mode.value == "warn"
    assert s.policy.exempt_users == ("ci-bot", "system:serviceaccount:ops:deployer")
    assert s.policy.exempt_namespaces == ()
    assert s.lock.lock_namespace == "locks" and s.lock.txn_annotation == "example.com/txn"
    assert s.lock.profile.value == "janus"
    assert s.lock.clock_skew_seconds == 3.5
    assert s.lookups.lease_lookup.value == "consistent" and s.events.enabled is False
    serving = s.serving
    assert serving.max_body_bytes == 1048576
    assert (serving.workers, serving.threads, serving.graceful_timeout_seconds, serving.log_level) == (
        3, 8, 10.0, "DEBUG")


@pytest.mark.parametrize(("failure_policy", "explicit", "expected"), [
    ("Fail", "", "deny"), ("Ignore", "", "allow"), ("Ignore", "deny", "deny"), ("Fail", "allow", "allow")])
def test_lookup_failure_policy_follows_failure_policy(failure_policy: str, explicit: str, expected: str) -> None:
    env = container_env(template({"webhook": {"failurePolicy": failure_policy},
                                  "config": {"lookupFailurePolicy": explicit}}))
    assert env["LEASEGATE_LOOKUP_FAILURE_POLICY"] == expected


# -- RBAC ------------------------------------------------------------------------------------


def test_rbac_is_least_privilege() -> None:
    docs = rendered("default")
    (role,) = by_kind(docs, "ClusterRole")
    vwc = one(docs, "ValidatingWebhookConfiguration")["metadata"]["name"]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "get", "patch"]},
        {"apiGroups": ["openreports.io"], "resources": ["reports", "clusterreports"],
         "verbs": ["get", "create", "update"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
         "resourceNames": [vwc], "verbs": ["get", "patch"]},
    ]
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    binding = one(docs, "ClusterRoleBinding")
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "leasegate-system"}]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa
    no_events = one(rendered("no-events"), "ClusterRole")
    assert all("events" not in rule["resources"] for rule in no_events["rules"])
    no_label = one(rendered("no-namespace-modes"), "ClusterRole")
    assert all("namespaces" not in rule["resources"] for rule in no_label["rules"])
    assert len(no_label["rules"]) == 4
    no_ledger = one(rendered("no-ledger"), "ClusterRole")
    assert all("openreports.io" not in rule["apiGroups"] for rule in no_ledger["rules"])


def test_openreports_crds_are_the_vendored_ones_kept_on_uninstall() -> None:
    import yaml

    crds = {d["metadata"]["name"]: d for d in by_kind(rendered("default"), "CustomResourceDefinition")}
    assert set(crds) == {"reports.openreports.io", "clusterreports.openreports.io"}
    for name, crd in crds.items():
        vendored = yaml.safe_load((CHART / "files" / "crds" / f"openreports.io_{name.split('.')[0]}.yaml").read_text())
        assert crd["spec"] == vendored["spec"]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["spec"]["versions"][0]["name"] == "v1alpha1"
    assert not by_kind(rendered("no-ledger"), "CustomResourceDefinition")


@pytest.mark.parametrize("option", ["default", "janus-profile"])
def test_holder_records_are_readable_only_under_a_profile_that_has_them(option: str) -> None:
    values = OPTIONS[option]
    record = LockProfile.of(Profile(values.get("config", {}).get("profile", "leasegate"))).holder_record
    role = one(rendered(option), "ClusterRole")
    holder_rules = [rule for rule in role["rules"]
                    if rule["apiGroups"] not in (["coordination.k8s.io"], [""], ["openreports.io"])
                    and rule["resources"] != ["validatingwebhookconfigurations"]]
    expected = [] if record is None else [{"apiGroups": [record.group], "resources": [record.plural], "verbs": ["get"]}]
    assert holder_rules == expected
    assert (record is None) == (option == "default")


# -- metrics -----------------------------------------------------------------------------------

# Every metric the webhook exports, as webhook/metrics.py declares it.
METRICS = set(re.findall(r'"(leasegate_[a-z_]+)"', (CHART.parents[1] / "webhook" / "metrics.py").read_text()))


def test_service_monitor_scrapes_the_metrics_port() -> None:
    docs = rendered("service-monitor")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    service = one(docs, "Service")
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_grafana_dashboard() -> None:
    configmap = one(rendered("dashboard"), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(configmap["data"]["leasegate.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\bleasegate_[a-z_]+", e)}
    assert len(METRICS) >= 8 and used == METRICS, f"not on the dashboard: {METRICS - used}; unknown: {used - METRICS}"
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
    assert {"result", "reason", "mode"} <= {lbl for e in exprs for lbl in re.findall(r"by \(([^)]*)\)", e)
                                            for lbl in [x.strip() for x in lbl.split(",")]} | {"reason"}


# -- NOTES -------------------------------------------------------------------------------------


def test_notes_tell_how_to_lock_and_see_it_enforced() -> None:
    from tests.support.helm import helm

    out = helm("install", "lg", str(CHART), "-n", "leasegate-system", "--dry-run=client").stdout
    notes = out.split("NOTES:", 1)[1]
    assert "kubectl lock acquire configmap/app -n demo --txn t42" in notes
    assert "kubectl -n demo annotate configmap app note=outside" in notes
    assert "leasegate.io/transaction=t42" in notes
    assert "kube-system, leasegate-system" in notes


# -- the schema and the chart's own checks reject bad values -----------------------------------

SCHEMA_REJECTS = [
    ({"config": {"mode": "block"}}, "at '/config/mode': value must be one of 'deny', 'warn', 'dryrun'"),
    ({"replicaCount": 0}, "at '/replicaCount': minimum: got 0, want 1"),
    ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
    ({"webhook": {"failurePolicy": "Maybe"}}, "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'"),
    ({"webhook": {"timeoutSeconds": 31}}, "at '/webhook/timeoutSeconds': maximum: got 31, want 30"),
    ({"webhook": {"timeoutSeconds": 0}}, "at '/webhook/timeoutSeconds': minimum: got 0, want 1"),
    ({"config": {"lockNamespace": "Bad_NS"}}, "at '/config/lockNamespace': 'Bad_NS' does not match pattern"),
    ({"config": {"exemptNamespaces": ["kube-system", "Not A Namespace"]}},
     "at '/config/exemptNamespaces/1': 'Not A Namespace' does not match pattern"),
    ({"bogus": 1}, "additional properties 'bogus' not allowed"),
    ({"config": {"modee": "warn"}}, "at '/config': additional properties 'modee' not allowed"),
    ({"config": {"profile": "etcd"}}, "at '/config/profile': value must be one of 'leasegate', 'janus'"),
    ({"config": {"leaseLookup": "sometimes"}}, "at '/config/leaseLookup': value must be one of"),
    ({"config": {"txnAnnotation": "not a key!"}}, "at '/config/txnAnnotation'"),
    ({"config": {"exemptUsers": ["alice,bob"]}}, "at '/config/exemptUsers/0': 'alice,bob' does not match pattern"),
    ({"config": {"clockSkewSeconds": -1}}, "at '/config/clockSkewSeconds': minimum: got -1, want 0"),
    ({"webhook": {"resources": [{"apiGroups": ["apps"], "resources": ["deployments/scale"]}]}},
     "at '/webhook/resources/0/resources/0': 'deployments/scale' does not match pattern"),
    ({"webhook": {"rules": []}}, "additional properties 'rules' not allowed"),
    ({"podAntiAffinity": "sometimes"}, "at '/podAntiAffinity': value must be one of 'soft', 'hard', 'none'"),
    ({"image": {"digest": "md5:abc"}}, "at '/image/digest'"),
    ({"networkPolicy": {"enabled": "yes"}}, "at '/networkPolicy/enabled': got string, want boolean"),
    ({"networkPolicy": {"admissionFrom": "10.0.0.0/24"}}, "at '/networkPolicy/admissionFrom': got string, want array"),
]


@pytest.mark.parametrize(("values", "message"), SCHEMA_REJECTS, ids=[m[:40] for _, m in SCHEMA_REJECTS])
def test_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    error = template_error(values)
    assert "values don't meet the specifications of the schema" in error
    assert message in error, error


def test_network_policy_admits_only_the_given_peers() -> None:
    assert by_kind(rendered("default"), "NetworkPolicy") == []
    policy = one(rendered("network-policy"), "NetworkPolicy")
    deployment = one(rendered("network-policy"), "Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items())
    admission, metrics = policy["spec"]["ingress"]
    assert admission == {"ports": [{"port": "https", "protocol": "TCP"}],
                         "from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}
    assert metrics["ports"] == [{"port": "http-health", "protocol": "TCP"}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    # The named ports exist on the container, or the policy would admit nothing.
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {"https", "http-health"} <= ports
    # Without peers the admission port stays open to all, the metrics port to none.
    open_policy = one(rendered("network-policy-open"), "NetworkPolicy")
    assert open_policy["spec"]["ingress"] == [{"ports": [{"port": "https", "protocol": "TCP"}]}]


def _rule(groups: list[str], resources: list[str]) -> dict[str, Any]:
    return {"webhook": {"resources": [{"apiGroups": groups, "resources": resources}]}}


CHART_REJECTS = [
    (_rule(["coordination.k8s.io"], ["leases"]),
     "webhook.resources[0].apiGroups: \"coordination.k8s.io\" must not be intercepted"),
    (_rule([""], ["events"]), "webhook.resources[0].resources: \"events\" must not be intercepted"),
    (_rule(["apps"], ["*/status"]), "at '/webhook/resources/0/resources/0': '*/status' does not match pattern"),
    ({**_rule(["apps"], ["*"]), "config": {"profile": "janus"}},
     "webhook.resources[0].resources: \"*\" would intercept every write under a profile whose objects carry no marker"),
    ({**_rule(["*"], ["deployments"]), "config": {"profile": "janus"}},
     "webhook.resources[0].apiGroups: \"*\" would intercept coordination.k8s.io Leases under a profile whose objects carry no marker"),
    (_rule(["example.com"], ["widgetreviews"]), "\"widgetreviews\" must not be intercepted"),
    (_rule(["authorization.k8s.io"], ["subjectaccessreviews"]), "\"authorization.k8s.io\" must not be intercepted"),
    ({"config": {"lookupTimeoutSeconds": 5}, "webhook": {"timeoutSeconds": 5}},
     "config.lookupTimeoutSeconds (5) must be below webhook.timeoutSeconds (5)"),
    ({"certManager": {"enabled": True}, "tls": {"existingSecret": "x", "caBundle": "eA=="}},
     "certManager.enabled and tls.existingSecret are exclusive"),
    ({"tls": {"existingSecret": "x"}}, "tls.existingSecret needs tls.caBundle"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name is required when serviceAccount.create is false"),
    ({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds (5) must be at least config.gracefulTimeoutSeconds"),
]


@pytest.mark.parametrize(("values", "message"), CHART_REJECTS, ids=[m[:40] for _, m in CHART_REJECTS])
def test_chart_rejects_unsafe_combinations(values: dict[str, Any], message: str) -> None:
    error = template_error(values)
    assert message in error, error
