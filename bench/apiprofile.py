"""Where the API server spends a webhook's share of a large write: a CPU profile.

``python -m bench.apiprofile`` (about a minute; needs ``go`` for ``go tool
pprof``) starts the local control plane with ``--profiling=true``, creates the
benchmark's 200 KB ConfigMap, and patches it in a loop, one write at a time,
first with no webhook, then with leasegate registered. During 10 s of each
phase it records kube-apiserver's CPU profile (``/debug/pprof/profile``) and
prints, per write, the API server's CPU time in total and in the validating
webhook call (``callHook``), in encoding the AdmissionReview
(``rest.(*Request).Body``) and in ``encoding/json.appendCompact`` under it.
The profiles stay in ``bench/out/apiserver-{off,on}.pprof``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from kubernetes import client

from bench.apiserver import admin_client, ensure_namespace, raw_call
from bench.reviews import configmap
from bench.servers import chart_settings, start_leasegate
from tools.localcluster import BIN_DIR, REPO_ROOT, LocalCluster, running
from tools.localwebhook import guard, register_webhook

NAMESPACE, NAME = "bench-apiprofile", "cm200k"
PROFILE_SECONDS = 10
#: Functions whose cumulative CPU time is reported per write (pprof names, regex).
FOCUS = {
    "validating webhook call (callHook)": r"validating\.\(\*validatingDispatcher\)\.callHook$",
    "  encoding the AdmissionReview (rest.(*Request).Body)": r"client-go/rest\.\(\*Request\)\.Body$",
    "    encoding/json.appendCompact": r"encoding/json\.appendCompact$",
}
_CUM_LINE = re.compile(r"^\s*\S+\s+\S+%\s+\S+%\s+(\S+?)(ms|s)\s+\S+%\s+(.+?)\s*$")


def _seconds(value: str, unit: str) -> float:
    return float(value) / (1000.0 if unit == "ms" else 1.0)


def _cumulative(profile: Path) -> tuple[float, dict[str, float]]:
    """Total CPU seconds in ``profile`` and the cumulative seconds of every function."""
    out = subprocess.run(["go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", str(profile)],
                         capture_output=True, text=True, check=True).stdout
    total_match = re.search(r"Total samples = (\S+?)(ms|s)\b", out)
    total = _seconds(*total_match.groups()) if total_match else 0.0
    functions: dict[str, float] = {}
    for line in out.splitlines():
        match = _CUM_LINE.match(line)
        if match:
            functions[match.group(3)] = _seconds(match.group(1), match.group(2))
    return total, functions


def _profile_phase(cluster: LocalCluster, api: client.ApiClient, tag: str, out_dir: Path) -> dict[str, float]:
    """Patch in a loop while the API server profiles itself; per-write CPU figures."""
    done: list[float] = []
    stop = threading.Event()
    core = client.CoreV1Api(api)

    def writes() -> None:
        serial = 0
        while not stop.is_set():
            patch = {"metadata": {"annotations": {"bench.leasegate.io/serial": str(serial)}}}
            core.patch_namespaced_config_map(NAME, NAMESPACE, patch, _preload_content=False)
            done.append(time.monotonic())
            serial += 1

    writer = threading.Thread(target=writes, daemon=True)
    writer.start()
    time.sleep(1.0)
    started = time.monotonic()
    data = subprocess.run([str(BIN_DIR / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_for("admin")),
                           "get", "--raw", f"/debug/pprof/profile?seconds={PROFILE_SECONDS}"],
                          capture_output=True, check=True).stdout
    ended = time.monotonic()
    stop.set()
    writer.join()
    profile = out_dir / f"apiserver-{tag}.pprof"
    profile.write_bytes(data)
    count = sum(started <= t <= ended for t in done)
    total, functions = _cumulative(profile)
    figures = {"writes_per_s": count / (ended - started), "cpu_ms_per_write": total / count * 1000}
    for label, pattern in FOCUS.items():
        seconds = sum(v for name, v in functions.items() if re.search(pattern, name))
        figures[label] = seconds / count * 1000
    return figures


def main() -> int:
    out_dir = REPO_ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    with running(profiling=True) as cluster:
        api = admin_client(cluster.kubeconfig_for("admin"))
        ensure_namespace(api, NAMESPACE)
        status, reply = raw_call(api, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                                 configmap(NAME, NAMESPACE, 200_000))
        if status != 201:
            raise RuntimeError(f"creating the ConfigMap: HTTP {status}: {str(reply)[:300]}")
        webhook = start_leasegate(Path(cluster.workdir), cluster.kubeconfig_for("admin"), "apiprofile",
                                  chart_settings())
        try:
            phases = {"no webhook": _profile_phase(cluster, api, "off", out_dir)}
            register_webhook(api, webhook)
            guard(api, NAMESPACE, webhook.key)
            phases["leasegate registered"] = _profile_phase(cluster, api, "on", out_dir)
        finally:
            webhook.stop()
    rows = ["writes_per_s", "cpu_ms_per_write", *FOCUS]
    print("| kube-apiserver, one 200 KB ConfigMap patch at a time | " + " | ".join(phases) + " |")
    print("|---|" + "---|" * len(phases))
    for row in rows:
        label = {"writes_per_s": "writes/s", "cpu_ms_per_write": "API server CPU ms per write (all)"}.get(
            row, f"{row.strip()}: CPU ms per write")
        print(f"| {label} | " + " | ".join(f"{figures[row]:.2f}" for figures in phases.values()) + " |")
    print(f"profiles: {out_dir}/apiserver-off.pprof, apiserver-on.pprof (go tool pprof -top -cum ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
