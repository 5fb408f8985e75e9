"""Run the real helm binary on charts/leasegate (no cluster needed for template/lint)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.localcluster import BIN_DIR

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "leasegate"
HELM = BIN_DIR / "helm"
# Namespaces a test installs the chart for carry this label (value: the install's scope), so a
# release's cluster-wide webhooks never judge another test's objects.
SCOPE_LABEL = "leasegate-chart-test"

Manifest = dict[str, Any]


class HelmError(AssertionError):
    """helm exited non-zero; the message carries its stderr."""


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Keep helm's caches/config out of $HOME and away from any real cluster.
    scratch = Path(tempfile.gettempdir()) / "leasegate-helm-home"
    env.update(HELM_CACHE_HOME=str(scratch / "cache"), HELM_CONFIG_HOME=str(scratch / "config"),
               HELM_DATA_HOME=str(scratch / "data"))
    env["KUBECONFIG"] = str(kubeconfig) if kubeconfig else str(scratch / "no-kubeconfig")
    result = subprocess.run([str(HELM), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def value_args(values: Mapping[str, Any] | None = None, sets: Sequence[str] = (),
               tmp_dir: Path | None = None) -> list[str]:
    args: list[str] = []
    if values:
        directory = tmp_dir or Path(tempfile.mkdtemp(prefix="leasegate-values-"))
        # JSON, not PyYAML: PyYAML leaves strings such as "348e09" unquoted, and
        # Helm's YAML 1.1 parser then reads them as numbers. JSON is valid YAML and
        # always quotes strings.
        text = json.dumps(dict(values), sort_keys=True)
        path = directory / f"values-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
        path.write_text(text)
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def template(values: Mapping[str, Any] | None = None, sets: Sequence[str] = (),
             release: str = "lg", namespace: str = "leasegate-system") -> list[Manifest]:
    out = helm("template", release, str(CHART), "--namespace", namespace,
               *value_args(values, sets)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def template_error(values: Mapping[str, Any] | None = None, sets: Sequence[str] = ()) -> str:
    """Render expecting failure; return helm's error text."""
    result = helm("template", "lg", str(CHART), "--namespace", "leasegate-system",
                  *value_args(values, sets), check=False)
    assert result.returncode != 0, f"expected helm template to fail, it rendered:\n{result.stdout[:2000]}"
    return result.stderr


def lint(values: Mapping[str, Any] | None = None, sets: Sequence[str] = ()) -> str:
    return helm("lint", "--strict", str(CHART), *value_args(values, sets)).stdout


def by_kind(docs: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Sequence[Manifest], kind: str) -> Manifest:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def container_env(docs: Sequence[Manifest]) -> dict[str, str]:
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}
