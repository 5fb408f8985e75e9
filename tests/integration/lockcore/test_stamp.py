"""``kubectl lock stamp``: manifests stamped as ``apply`` stamps them, alone and as Helm's post-renderer.

The round trip needs only the real kubectl (it stamps locally); the Helm recipe of docs/lockcore.md
runs against the real API server, in a namespace the shipped webhook judges.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockcore.kube import LOCKED_LABEL
from tests.support.cli import lockcore, plugin_env
from tests.support.cluster import KubectlRunner
from tests.support.helm import HELM
from tools.localcluster import BIN_DIR, LocalCluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TXN_ANNOTATION = "leasegate.io/transaction"

MANIFESTS = """\
# a comment kubectl does not keep
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: web}
  annotations:
    note: "kept as it is"
data:
  mode: blue
  count: "3"
  text: "wörds and ünïcode"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1.2", args: ["--port", "8080"], env: [{name: DEBUG, value: "false"}]}]
---
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"token": "abc"}},
  {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3.5, "on": true}}]}
"""


def flattened(documents: list[Any]) -> list[Any]:
    return [item for doc in documents for item in (doc["items"] if doc.get("kind") == "List" else [doc])]


def unstamped(obj: dict[str, Any], txn: str) -> dict[str, Any]:
    """``obj`` without the stamp, after checking it carries exactly that stamp."""
    obj = copy.deepcopy(obj)
    metadata = obj["metadata"]
    assert metadata["annotations"].pop(TXN_ANNOTATION) == txn
    assert metadata["labels"].pop(LOCKED_LABEL) == txn
    for field in ("annotations", "labels"):
        if not metadata[field]:
            del metadata[field]
    return obj


def stamp(cluster_env: dict[str, str], text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN_DIR / "kubectl"), "lock", "stamp", *args], input=text, capture_output=True,
                          text=True, env=cluster_env, timeout=60)


def test_stamp_round_trips_every_document_with_only_the_stamp_added(cluster: LocalCluster) -> None:
    stamped = stamp(plugin_env(cluster), MANIFESTS, "--txn", "t42")
    assert stamped.returncode == 0, stamped.stderr
    out = list(yaml.safe_load_all(stamped.stdout))
    assert [unstamped(obj, "t42") for obj in out] == flattened(list(yaml.safe_load_all(MANIFESTS)))
    as_json = stamp(plugin_env(cluster, LEASEGATE_TXN="t42"), MANIFESTS, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    decoder, text, values, at = json.JSONDecoder(), as_json.stdout, [], 0
    while text[at:].strip():
        value, at = decoder.raw_decode(text, len(text) - len(text[at:].lstrip()))
        values.append(value)
    assert values == out


@pytest.mark.parametrize(("text", "code", "says"), [
    ("", 0, ""),
    ("{not yaml", 1, "error: error parsing STDIN"),
])
def test_stamp_of_empty_or_bad_input(cluster: LocalCluster, text: str, code: int, says: str) -> None:
    stamped = stamp(plugin_env(cluster), text, "--txn", "t42")
    assert stamped.returncode == code and says in stamped.stderr and "Traceback" not in stamped.stderr
    assert stamped.stderr.count("error:") == (1 if code else 0), "kubectl's own line, nothing added"
    assert stamped.stdout == ""


def plugin_yaml() -> str:
    """The post-renderer plugin exactly as docs/lockcore.md gives it."""
    doc = (REPO / "docs" / "lockcore.md").read_text()
    found = re.search(r"<!-- helm-postrenderer-plugin:[^\n]*-->\n```yaml\n(.*?)```", doc, re.S)
    assert found, "docs/lockcore.md lost the plugin block"
    return found.group(1)


def chart(directory: Path) -> Path:
    (directory / "templates").mkdir(parents=True)
    (directory / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (directory / "templates" / "objects.yaml").write_text("""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  mode: {{ .Values.mode | default "blue" | quote }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-token
stringData:
  token: abc
""")
    return directory


@pytest.mark.usefixtures("locked_ns")
def test_a_helm_upgrade_locked_by_run_and_stamped_by_the_post_renderer(
        cluster: LocalCluster, locked_ns: str, kubectl: KubectlRunner, tmp_path: Path) -> None:
    env = plugin_env(cluster, "alice", **{f"HELM_{kind}_HOME": str(tmp_path / kind.lower())
                                         for kind in ("CACHE", "CONFIG", "DATA")})
    plugin = tmp_path / "leasegate-stamp"
    plugin.mkdir()
    (plugin / "plugin.yaml").write_text(plugin_yaml())
    subprocess.run([str(HELM), "plugin", "install", str(plugin)], env=env, check=True, capture_output=True)
    tiny = chart(tmp_path / "chart")
    installed = subprocess.run([str(HELM), "install", "web", str(tiny), "-n", locked_ns], env=env,
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    # The recipe: helm template names the objects, run locks them, helm writes them stamped.
    recipe = (f"{HELM} template web {tiny} -n {locked_ns} | kubectl lock run --txn t42 --ttl 5s -n {locked_ns}"
              f" -f - -- {HELM} upgrade --install web {tiny} -n {locked_ns} --set mode=green"
              " --post-renderer leasegate-stamp")
    done = subprocess.run(["sh", "-c", recipe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "locked configmap/web-settings" in done.stderr and "locked secret/web-token" in done.stderr
    written = json.loads(kubectl("get", "cm/web-settings", "secret/web-token", "-n", locked_ns, "-o", "json").stdout)
    assert [i["metadata"]["annotations"][TXN_ANNOTATION] for i in written["items"]] == ["t42", "t42"]
    assert written["items"][0]["data"] == {"mode": "green"}
    after = kubectl("annotate", "cm/web-settings", "-n", locked_ns, "x=1", user="bob", check=False)
    assert after.returncode == 0, "released: bob's write passes again"
    listed = lockcore(cluster, "list", "-n", locked_ns, "-o", "json")
    assert json.loads(listed.stdout)["items"] == [], "released when helm ended"
