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

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tools.localcluster import BIN_DIR, REPO_ROOT
from tools.localwebhook import RunningWebhook, start_webhook

CHART = REPO_ROOT / "charts" / "leasegate"
# Pod-specific settings replaced by the launcher's loopback equivalents.
_POD_ONLY = {"BIND_ADDRESS", "PORT", "HEALTH_PORT", "TLS_CERT_FILE", "TLS_KEY_FILE", "SERVICE_NAME",
             "SERVICE_NAMESPACE", "WEBHOOK_CONFIG_NAME", "CERT_DIR", "KUBECONFIG"}


def chart_settings(chart: Path = CHART) -> dict[str, str]:
    """The webhook settings the chart's default values render, named as their variables without ``LEASEGATE_``
    in lower case (what :func:`tools.localwebhook.start_webhook` takes)."""
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
    return start_webhook(workdir, None, key, command=[sys.executable, "-m", "bench.baseline"],
                         extra_env={"BENCH_BASELINE_COUNT": "1"} if count else None, **settings)


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return float("nan")


def workers_rss(running: RunningWebhook) -> dict[str, float]:
    """RSS per worker (MiB), keyed by pid, plus the master's."""
    out = {str(pid): rss_mb(pid) for pid in running.worker_pids()}
    out["master"] = rss_mb(running.process.pid)
    return out
