"""Run the real webhook (``leasegate-webhook``) against a real kube-apiserver.

Shared by the integration tests, the reliability tests, the benchmark and the
demo (tools/demo.py), so there is one way to start and register the webhook:

* :func:`start_webhook` starts a webhook process on free loopback ports with
  generated certificates and returns a :class:`RunningWebhook` (URL, CA, log
  lines, metrics scrape, raw POST).
* :func:`register_webhook` creates a ValidatingWebhookConfiguration (URL
  client config + caBundle, from ``webhook.registration``) that judges only
  namespaces and cluster-scoped objects labelled ``leasegate.test/webhook=<key>``,
  and waits until the API server actually calls the webhook.
* :func:`guard` labels a namespace so that webhook judges it; :func:`lock`
  creates a lock Lease exactly as lockcore writes it.

Nothing here fakes the Kubernetes API: the API server calls the webhook over
TLS, exactly as in a cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.fence import PROBE_WARNING, Fence
from lockcore.kube import ENV_PREFIX, LOCKED_LABEL, PROBE_LABEL, lease_path
from lockcore.lease import lease_body
from lockcore.naming import ResourceKey, lease_ref
from lockcore.profiles import LockProfile, Profile
from lockcore.resources import request_json_warned
from lockcore.settings import LockSettings
from tools.localcluster import REPO_ROOT, free_port
from webhook.policy import admission_policies, keepalive_policies
from webhook.registration import webhook_configuration

SELECT_LABEL = "leasegate.test/webhook"
# Cluster-scoped objects are selected by a label of their own, so that labelling
# a namespace for judgement does not also put the Namespace object under the webhook.
OBJECT_SELECT_LABEL = "leasegate.test/webhook-object"
WEBHOOK_BIN = Path(sys.executable).with_name("leasegate-webhook")


@dataclass
class RunningWebhook:
    """A live ``leasegate-webhook`` process and how to reach it."""

    key: str
    process: subprocess.Popen[bytes]
    port: int
    health_port: int
    cert_dir: Path
    log_file: Path
    settings_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    def health(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.health_port}{path}", timeout=5)

    def metrics(self) -> str:
        return self.health("/metrics").text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def post(self, body: bytes, content_type: str = "application/json", **kwargs: Any) -> requests.Response:
        return requests.post(self.url, data=body, headers={"Content-Type": content_type},
                             verify=str(self.ca_file), timeout=10, **kwargs)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
        return records

    def alive(self) -> bool:
        return self.process.poll() is None

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's child processes (by parent pid, nothing broader)."""
        pids: set[int] = set()
        task_dir = Path(f"/proc/{self.process.pid}/task")
        for task in task_dir.iterdir() if task_dir.exists() else []:
            try:
                pids.update(int(p) for p in (task / "children").read_text().split())
            except OSError:
                continue
        return sorted(pids)

    def wait_workers(self, count: int, timeout: float = 20.0) -> list[int]:
        """Wait until the gunicorn master has ``count`` workers (the last may still boot when
        the first answers); returns their pids, or what there is at the timeout."""
        deadline = time.monotonic() + timeout
        pids = self.worker_pids()
        while len(pids) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = self.worker_pids()
        return pids

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def as_body(manifest: dict[str, Any]) -> Any:
    """``manifest`` as a request body for the official client's typed methods.

    The client sends a plain dict as it is; its annotations name only its
    model classes (V1Namespace...), which these helpers do not need.
    """
    return manifest


def minor_page_faults(pid: int) -> int:
    """Minor page faults of process ``pid`` so far (field 10 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[7])


def start_webhook(workdir: Path, kubeconfig: Path | None, key: str, *,
                  command: Sequence[str] = (), extra_env: Mapping[str, str] | None = None,
                  **settings: Any) -> RunningWebhook:
    """Start ``leasegate-webhook`` with ``settings`` and wait until ready.

    ``settings`` are named as their ``LEASEGATE_*`` variables without the prefix, in lower case
    (``event_window_seconds=60`` is ``LEASEGATE_EVENT_WINDOW_SECONDS=60``; ``leasegate-webhook --help``).

    ``command`` replaces the program (the benchmark's allow-everything server
    runs with the same settings); ``extra_env`` is added to its environment.
    """
    port, health_port = free_port(), free_port()
    cert_dir = workdir / f"certs-{key}"
    log_file = workdir / f"webhook-{key}.log"
    given = {"bind_address": "127.0.0.1", "port": port, "health_port": health_port, "cert_dir": cert_dir,
             "workers": 2, "threads": 4, "event_window_seconds": 60, "ledger_flush_seconds": 1,
             **({"kubeconfig": kubeconfig} if kubeconfig is not None else {}), **settings}
    env = {f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in given.items()}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # This checkout's code, whichever tree the venv's (editable) install points at.
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env)
    full_env.update(extra_env or {})
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(list(command) or [str(WEBHOOK_BIN)], stdout=log, stderr=subprocess.STDOUT,
                                env=full_env, cwd=REPO_ROOT, start_new_session=True)
    running = RunningWebhook(key, proc, port, health_port, cert_dir, log_file, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"webhook exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            if running.health("/healthz").status_code == 200 and running.ca_file.exists():
                requests.get(f"https://127.0.0.1:{port}/", verify=str(running.ca_file), timeout=2)
                return running
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    running.stop()
    raise TimeoutError(f"webhook not ready:\n{log_file.read_text()[-3000:]}")



def register_webhook(api: client.ApiClient, running: RunningWebhook, *, failure_policy: str = "Fail",
                     timeout_seconds: int = 5, profile: Profile = Profile.LEASEGATE) -> str:
    """Register ``running`` for objects labelled ``SELECT_LABEL=<key>``; wait until it is called.

    Returns the configuration's name. The webhooks of ``webhook.registration``
    (the chart's), each twice: namespaced objects selected by their
    namespace's label, cluster-scoped ones by their own; and, under a profile
    that fences, the reservation policies of ``webhook.policy`` scoped the
    same way.
    """
    name = f"leasegate-test-{running.key}"
    env = {**running.settings_env}
    require_members = env.get(ENV_PREFIX + "REQUIRE_MEMBERS", "").lower() in {"1", "true", "yes", "on"}
    body = webhook_configuration(name, running.ca_pem, url=running.url, profile=LockProfile.of(profile),
                                 failure_policy=failure_policy, timeout_seconds=timeout_seconds,
                                 require_members=require_members)
    scoped = []
    for hook in body["webhooks"]:
        namespaced = {**hook, "namespaceSelector": {"matchLabels": {SELECT_LABEL: running.key}},
                      "rules": [{**rule, "scope": "Namespaced"} for rule in hook["rules"]]}
        scoped.append(namespaced)
        if hook["name"].startswith("leases."):
            continue  # Leases are namespaced
        selector = hook["objectSelector"]
        scoped.append({**hook, "name": "cluster." + hook["name"],
                       "objectSelector": {**selector, "matchLabels": {OBJECT_SELECT_LABEL: running.key}},
                       "rules": [{**rule, "scope": "Cluster"} for rule in hook["rules"]]})
    body["webhooks"] = scoped
    admission = client.AdmissionregistrationV1Api(api)
    _delete_quietly(admission.delete_validating_webhook_configuration, name)
    admission.create_validating_webhook_configuration(as_body(body), _preload_content=False)
    if LockProfile.of(profile).fences:
        install_policies(api, test_policies(name, running))
    _wait_called(api, running, policies=LockProfile.of(profile).fences)
    return name


def test_policies(name: str, running: RunningWebhook) -> list[dict[str, Any]]:
    """The reservation policies for ``running``'s settings, judging only what its key selects."""
    lock = LockSettings.from_env(running.settings_env)
    mode = running.settings_env.get(ENV_PREFIX + "MODE", "deny").lower()
    return admission_policies(
        f"reservations.{name}", lock_namespace=lock.lock_namespace, txn_label=lock.lock_profile.txn_label,
        txn_annotation=lock.txn_annotation, mode=mode,
        namespace_selector={"matchLabels": {SELECT_LABEL: running.key}},
        cluster_object_selector={"matchLabels": {OBJECT_SELECT_LABEL: running.key}},
        namespace_mode_label=running.settings_env.get(ENV_PREFIX + "NAMESPACE_MODE_LABEL", "leasegate.io/enforcement"))


KEEPALIVE = "leasegate-test-lease-params-keepalive"


def install_policies(api: client.ApiClient, objects: Sequence[Mapping[str, Any]]) -> None:
    """Create (or replace) ValidatingAdmissionPolicies and their bindings.

    First the keepalive (``webhook.policy.keepalive_policies``), created once and never
    deleted: replacing the last binding of the Lease paramKind would freeze the API
    server's Lease informer for the rest of the session.
    """
    admission = client.AdmissionregistrationV1Api(api)
    for keep in keepalive_policies(KEEPALIVE):
        create_if_absent(admission.create_validating_admission_policy if keep["kind"] == "ValidatingAdmissionPolicy"
                         else admission.create_validating_admission_policy_binding, keep)
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ValidatingAdmissionPolicy":
            _delete_quietly(admission.delete_validating_admission_policy, name)
            admission.create_validating_admission_policy(as_body(dict(obj)), _preload_content=False)
        else:
            _delete_quietly(admission.delete_validating_admission_policy_binding, name)
            admission.create_validating_admission_policy_binding(as_body(dict(obj)), _preload_content=False)


def uninstall_policies(api: client.ApiClient, objects: Sequence[Mapping[str, Any]]) -> None:
    admission = client.AdmissionregistrationV1Api(api)
    for obj in objects:
        delete = (admission.delete_validating_admission_policy if obj["kind"] == "ValidatingAdmissionPolicy"
                  else admission.delete_validating_admission_policy_binding)
        _delete_quietly(delete, obj["metadata"]["name"])


def create_if_absent(create: Callable[..., Any], body: Mapping[str, Any]) -> None:
    """Create ``body`` with the client method ``create``; one that exists already is left as it is."""
    try:
        create(as_body(dict(body)), _preload_content=False)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _delete_quietly(delete: Callable[..., Any], name: str) -> None:
    try:
        delete(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _wait_called(api: client.ApiClient, running: RunningWebhook, timeout: float = 30, *, policies: bool) -> None:
    """Until the API server calls the webhook for a guarded namespace (a new one, made for this)."""
    core = client.CoreV1Api(api)
    namespace = f"probe-{running.key}-{uuid.uuid4().hex[:6]}"[:63]
    core.create_namespace(as_body({"metadata": {"name": namespace, "labels": {SELECT_LABEL: running.key}}}),
                          _preload_content=False)
    wait_judged(api, running, namespace, timeout=timeout, policies=policies)


def _create_once_policies_synced(core: client.CoreV1Api, namespace: str, body: dict[str, Any],
                                 deadline: float) -> None:
    """Create ``body``; while a just-bound policy's param informer has not synced its Leases (slow
    with many of them), the API server refuses every create with 422 "not yet synced": retry."""
    while True:
        try:
            core.create_namespaced_config_map(namespace, as_body(body), _preload_content=False)
            return
        except ApiException as exc:
            if exc.status != 422 or "not yet synced" not in str(exc.body) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def wait_judged(api: client.ApiClient, running: RunningWebhook, namespace: str, timeout: float = 30,
                policies: bool | None = None) -> None:
    """Dry-run updates of a marked object in ``namespace`` until the webhook's decision counter moves.

    The API server matches namespaceSelectors against its informer's copy of
    the namespace, which may lag a label just set (:func:`guard`).
    """
    core = client.CoreV1Api(api)
    name = f"judged-{uuid.uuid4().hex[:6]}"
    marked = {"metadata": {"name": name, "labels": {LOCKED_LABEL: "probe"}}}
    deadline = time.monotonic() + timeout
    _create_once_policies_synced(core, namespace, marked, deadline)
    before = running.metric("leasegate_admission_decisions_total")
    try:
        while time.monotonic() < deadline:
            try:
                core.patch_namespaced_config_map(name, namespace, {"data": {"x": "1"}}, dry_run="All",
                                                 _preload_content=False)
            except ApiException:
                pass  # a webhook that refuses (e.g. failing lookups under policy deny) still answered
            if running.metric("leasegate_admission_decisions_total") > before:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"the API server never called webhook {running.key} for namespace {namespace}")
        if LockSettings.from_env(running.settings_env).lock_profile.fences if policies is None else policies:
            _wait_policies(api, namespace, deadline)
    finally:
        try:  # a webhook that fails every lookup refuses this too: the object then stays, harmless
            core.delete_namespaced_config_map(name, namespace, _preload_content=False)
        except ApiException:
            pass


def _wait_policies(api: client.ApiClient, namespace: str, deadline: float) -> None:
    """Until the reservation policies' bindings select ``namespace`` too (their matcher has its own view)."""
    probe = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"generateName": "judged-", "labels": {PROBE_LABEL: "none"}}}
    while time.monotonic() < deadline:
        _, _, warnings = request_json_warned(api, "POST", lease_path(namespace), body=probe, query={"dryRun": "All"})
        if any(PROBE_WARNING in w for w in warnings):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the reservation policies never judged namespace {namespace}")


def guard(api: client.ApiClient, namespace: str, key: str, **labels: str) -> None:
    """Put ``namespace`` under the webhook registered with ``key`` (plus any extra labels)."""
    client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"labels": {SELECT_LABEL: key, **labels}}}, _preload_content=False)


def grant_edit(api: client.ApiClient, namespace: str, group: str = "developers", *,
               locks: bool = False) -> None:
    """Let ``group`` (alice and bob) edit common objects in ``namespace``.

    ``locks`` also lets them take locks there (Leases) and read the audit
    Events. A Role of its own: the built-in ``edit`` ClusterRole is filled in
    by the aggregation controller, which the local control plane may not run.
    """
    rules: list[dict[str, Any]] = [{"apiGroups": ["", "apps"], "verbs": ["*"],
                                    "resources": ["configmaps", "secrets", "deployments", "deployments/scale"]}]
    if locks:
        rules.append({"apiGroups": ["coordination.k8s.io"], "verbs": ["*"], "resources": ["leases"]})
        rules.append({"apiGroups": [""], "verbs": ["get", "list", "watch"], "resources": ["events"]})
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, as_body({
        "metadata": {"name": "developers-edit"},
        "rules": rules,
    }), _preload_content=False)
    rbac.create_namespaced_role_binding(namespace, as_body({
        "metadata": {"name": "developers-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "developers-edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }), _preload_content=False)


def lock(api: client.ApiClient, key: ResourceKey, txn: str, *, principal: str = "alice",
         duration_seconds: int = 120, age_seconds: float = 0,
         settings: LockSettings | None = None) -> None:
    """Lock ``key`` as lockcore leaves it: its Lease (``age_seconds`` back-dates it) and the marker.

    The marker goes on first, while no Lease exists, so the helper needs no
    proof of the transaction whoever ``api`` acts as (lockcore's acquire
    stamps after winning the Lease, as the holder). An object that does not
    exist yet gets no marker, as with lockcore.
    """
    settings = settings or LockSettings()
    ref = lease_ref(key, settings)
    if key.cluster_scoped:
        ensure_namespace(api, ref.namespace)
    unlock(api, key, settings)
    if settings.lock_profile.fences:
        Fence(api).stamp(key, txn)
    now = datetime.now(timezone.utc) - timedelta(seconds=age_seconds)
    body = lease_body(namespace=ref.namespace, name=ref.name, key=key, txn=txn,
                      duration_seconds=duration_seconds, now=now, principal=principal,
                      profile=settings.profile)
    client.CoordinationV1Api(api).create_namespaced_lease(ref.namespace, as_body(body), _preload_content=False)
    if settings.lock_profile.fences:  # as acquire: once the reservation policy has it
        Fence(api).await_reservation(key, ref)


def unlock(api: client.ApiClient, key: ResourceKey, settings: LockSettings | None = None) -> None:
    """Delete ``key``'s lock Lease, then its marker (as release does)."""
    settings = settings or LockSettings()
    ref = lease_ref(key, settings)
    try:
        client.CoordinationV1Api(api).delete_namespaced_lease(ref.name, ref.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
    if settings.lock_profile.fences:
        Fence(api).unstamp(key, None)
        Fence(api).await_reservation(key, ref, present=False)


REPORT_CRDS = REPO_ROOT / "charts" / "leasegate" / "files" / "crds"


def install_report_crds(api: client.ApiClient, timeout: float = 30) -> None:
    """Create the chart's vendored OpenReports CRDs unless present (as the chart does), and wait until served."""
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted(REPORT_CRDS.glob("*.yaml")):
        create_if_absent(extensions.create_custom_resource_definition, yaml.safe_load(path.read_text()))
    objects = client.CustomObjectsApi(api)

    def served() -> bool:
        try:
            for plural in ("reports", "clusterreports"):
                objects.list_cluster_custom_object("openreports.io", "v1alpha1", plural, limit=1,
                                                   _preload_content=False)
            return True
        except ApiException:
            return False

    wait_for(served, timeout=timeout)


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).create_namespace(as_body({"metadata": {"name": name}}), _preload_content=False)
    except ApiException as exc:
        if exc.status != 409:
            raise


def wait_for(check: Callable[[], Any], timeout: float = 15, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)
