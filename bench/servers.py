"""Start the webhook (as the chart runs it) and the allow-everything baseline; read worker RSS.

The webhook is the real ``leasegate-webhook`` process, started by the
shared launcher (tools/localwebhook.py
:func:`start_webhook`) with the settings the Helm chart renders into the
Deployment's environment (``helm template charts/leasegate``): same gunicorn
workers, threads, keep-alive, timeouts, lookup mode, log level... Only what
ties the process to a Pod (ports, certificate paths, Service names) is
replaced by loopback equivalents.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from tools.localwebhook import RunningWebhook, start_webhook
from tools.localcluster import BIN_DIR, REPO_ROOT, free_port

CHART = REPO_ROOT / "charts" / "leasegate"
# Pod-specific settings replaced by the launcher's loopback equivalents.
_POD_ONLY = {"BIND_ADDRESS", "PORT", "HEALTH_PORT", "TLS_CERT_FILE", "TLS_KEY_FILE", "SERVICE_NAME",
             "SERVICE_NAMESPACE", "WEBHOOK_CONFIG_NAME", "CERT_DIR", "KUBECONFIG"}


def chart_settings(chart: Path = CHART) -> dict[str, str]:
    """The webhook settings the chart's default values render, as WebhookSettings field names."""
    rendered = subprocess.run([str(BIN_DIR / "helm"), "template", "bench", str(chart)],
                              capture_output=True, text=True, check=True).stdout
    for doc in yaml.safe_load_all(rendered):
        if isinstance(doc, dict) and doc.get("kind") == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            out: dict[str, str] = {}
            for item in container.get("env") or []:
                name = str(item["name"])
                if name.startswith("LEASEGATE_") and "value" in item:
                    field = name.removeprefix("LEASEGATE_")
                    if field not in _POD_ONLY:
                        out[field.lower()] = str(item["value"])
            return out
    raise RuntimeError(f"helm template {chart} rendered no Deployment")


def start_leasegate(workdir: Path, kubeconfig: Path, key: str, settings: dict[str, str],
                    **overrides: Any) -> RunningWebhook:
    """The real webhook with the chart's settings plus ``overrides``."""
    return start_webhook(workdir, kubeconfig, key, **{**settings, **overrides})


def start_baseline(workdir: Path, key: str, settings: dict[str, str], *,
                   count: bool = False) -> RunningWebhook:
    """The allow-everything server (bench.baseline) with the same settings and environment.

    ``count``: it also counts its answers in the decisions metric (for registration).
    """
    return start_module("bench.baseline", workdir, key, settings,
                        extra_env={"BENCH_BASELINE_COUNT": "1"} if count else None)


def start_module(module: str, workdir: Path, key: str, settings: dict[str, str],
                 kubeconfig: Path | None = None, *, extra_env: dict[str, str] | None = None,
                 **overrides: Any) -> RunningWebhook:
    """``python -m module`` configured like :func:`start_webhook` (loopback ports, generated certs)."""
    port, health_port = free_port(), free_port()
    cert_dir = workdir / f"certs-{key}"
    log_file = workdir / f"webhook-{key}.log"
    env = {f"LEASEGATE_{k.upper()}": str(v) for k, v in {**settings, **overrides}.items()}
    env.update({"LEASEGATE_BIND_ADDRESS": "127.0.0.1", "LEASEGATE_PORT": str(port),
                "LEASEGATE_HEALTH_PORT": str(health_port), "LEASEGATE_CERT_DIR": str(cert_dir)})
    if kubeconfig is not None:
        env["LEASEGATE_KUBECONFIG"] = str(kubeconfig)
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("LEASEGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    full_env.update(env)
    full_env.update(extra_env or {})
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", module], stdout=log,
                                stderr=subprocess.STDOUT, env=full_env, cwd=REPO_ROOT,
                                start_new_session=True)
    running = RunningWebhook(key, proc, port, health_port, cert_dir, log_file, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{module} exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            if running.ca_file.exists():
                requests.get(f"https://127.0.0.1:{port}/", verify=str(running.ca_file), timeout=2)
                return running
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    running.stop()
    raise TimeoutError(f"{module} not ready:\n{log_file.read_text()[-3000:]}")


def wait_workers(running: RunningWebhook, count: int, timeout: float = 20.0) -> list[int]:
    """Wait until the gunicorn master has ``count`` workers; returns their pids."""
    deadline = time.monotonic() + timeout
    pids = worker_pids(running.process.pid)
    while len(pids) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = worker_pids(running.process.pid)
    return pids


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's child processes."""
    pids: list[int] = []
    task_dir = Path(f"/proc/{master}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return float("nan")


def workers_rss(running: RunningWebhook) -> dict[str, float]:
    """RSS per worker (MiB), keyed by pid, plus the master's."""
    out = {str(pid): rss_mb(pid) for pid in worker_pids(running.process.pid)}
    out["master"] = rss_mb(running.process.pid)
    return out
