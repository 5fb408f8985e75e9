"""``leasegate-webhook``: run the admission webhook under gunicorn.

* Admission on ``port``, TLS only (1.2+), gunicorn ``gthread`` workers (two per
  CPU unless told) whose threads only see complete requests: the TLS handshake
  and the request are read by each worker's event loop, within
  ``request_read_timeout_seconds`` (see webhook/worker.py), so slow clients
  cannot starve the others. Keep-alive for the API server's reused
  connections, and graceful shutdown: on SIGTERM workers stop accepting and finish in-flight
  requests for up to ``graceful_timeout_seconds``.
* ``/healthz``, ``/readyz`` (200 only while the API server answers) and
  ``/metrics`` on plain ``health_port``, served by a thread of the gunicorn
  master so they keep answering while workers restart (webhook/probes.py).
* Serving certificate: the given files (reloaded when they change), or a CA and
  certificate generated into ``cert_dir`` at start, whose CA is written into
  ``webhook_config_name``'s caBundle.

Every flag mirrors a ``LEASEGATE_*`` environment variable (``--lookup-timeout-seconds``
is ``LEASEGATE_LOOKUP_TIMEOUT_SECONDS``); flags win. Both lists are the settings'
sections' variables (:func:`lockcore.settings.variables` of
:class:`~webhook.settings.WebhookSettings`).

Example::

    leasegate-webhook --port 8443 --health-port 8080 --mode warn --lease-lookup cached
"""

from __future__ import annotations

import argparse
import gc
import glob
import logging
import logging.config
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from lockcore.kube import ENV_PREFIX
from lockcore.settings import SettingsError, variables
from webhook.allocator import retain_freed_memory
from webhook.apiserver import ApiServer
from webhook.app import create_app_from_settings
from webhook.certs import ReloadingContext, generate
from webhook.logs import AccessLogOnDemand, log_config
from webhook.metrics import mark_worker_dead
from webhook.probes import Readiness, start_health_server
from webhook.registration import ensure_ca_bundle
from webhook.settings import ServingSettings, WebhookSettings
from webhook.worker import deadline_worker

log = logging.getLogger("leasegate.serve")


def _flags() -> list[tuple[str, str, str]]:
    """(flag, env var, help) for every setting of every section: one list of knobs for env and CLI."""
    out = []
    for variable in variables(WebhookSettings):
        default = variable.default
        if isinstance(default, tuple):
            default = ",".join(default)
        default = getattr(default, "value", default)
        flag = "--" + variable.name.removeprefix(ENV_PREFIX).lower().replace("_", "-")
        out.append((flag, variable.name, f"{variable.name} (default: {default})"))
    return out


def parse_settings(argv: Sequence[str] | None = None) -> WebhookSettings:
    """Settings from the environment, overridden by command-line flags."""
    parser = argparse.ArgumentParser(
        prog="leasegate-webhook",
        description="Validating admission webhook enforcing leasegate's Lease-based locks. "
                    "Each flag overrides the environment variable named in its help; "
                    "see docs/webhook.md.",
    )
    flags = _flags()
    for flag, env, help_text in flags:
        parser.add_argument(flag, dest=env, metavar="VALUE", help=help_text)
    args = vars(parser.parse_args(argv))
    environ = dict(os.environ)
    environ.update({env: value for env, value in args.items() if value is not None})
    try:
        return WebhookSettings.from_env(environ)
    except SettingsError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def _prepare_metrics_dir() -> None:
    # Before the first metric is used (webhook.metrics imports prometheus_client then).
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        directory = tempfile.mkdtemp(prefix="leasegate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.unlink(stale)  # samples of a previous run would be summed into ours


def _register_ca(connect: Callable[[], ApiServer], config_name: str, ca_pem: bytes) -> None:
    for attempt in range(30):
        try:
            ensure_ca_bundle(connect(), config_name, ca_pem)
            return
        except Exception as exc:  # noqa: BLE001 - keep trying while the API server comes up
            log.warning("caBundle registration attempt %d failed: %s", attempt + 1, exc)
            time.sleep(2)


def gunicorn_options(serving: ServingSettings, cert_file: str, key_file: str,
                     hooks: Mapping[str, Callable[..., None]]) -> dict[str, Any]:
    """The gunicorn settings of ``serving``, with the server ``hooks`` (also what the benchmark reuses)."""
    reloader = ReloadingContext(cert_file, key_file)
    return {
        "bind": [f"{serving.bind_address}:{serving.port}"],
        "workers": serving.workers or 2 * (os.cpu_count() or 1),
        # gthread, with the handshake and request read off the threads (slowloris).
        "worker_class": deadline_worker(serving.request_read_timeout_seconds),
        "threads": serving.threads,
        "keepalive": serving.keepalive_seconds,
        "graceful_timeout": int(serving.graceful_timeout_seconds),
        "timeout": 30,
        "certfile": cert_file,
        "keyfile": key_file,
        "ssl_context": lambda conf, default_factory: reloader.context(),
        "logconfig_dict": log_config(serving.log_level),
        "accesslog": None,
        "logger_class": AccessLogOnDemand,
        "proc_name": "leasegate-webhook",
        **hooks,
        "preload_app": False,  # each worker builds its own clients and cache threads after fork
        # gunicorn >= 25 opens a management socket in $HOME by default: a needless
        # control surface in a Pod, and a clash between several local instances.
        "control_socket_disable": True,
    }


def hooks_from_settings(settings: WebhookSettings, ca_pem: bytes | None) -> dict[str, Callable[..., None]]:
    """:func:`server_hooks` wired from ``settings``: ``/readyz`` asks the API server (kubeconfig, lookup
    timeout), and a generated CA (``ca_pem``) goes into serving's ``webhook_config_name``'s caBundle."""

    def connect() -> ApiServer:
        return ApiServer.connect(settings.kubeconfig)

    config_name = settings.serving.webhook_config_name
    register = None
    if ca_pem is not None and config_name:
        def register() -> None:
            _register_ca(connect, config_name, ca_pem)
    return server_hooks(settings.serving, Readiness(connect, settings.lookups.lookup_timeout_seconds), register)


def server_hooks(serving: ServingSettings, ready: Callable[[], tuple[bool, str]],
                 register_ca: Callable[[], None] | None = None) -> dict[str, Callable[..., None]]:
    """gunicorn's server hooks: the probes (``ready`` answers ``/readyz``) and ``register_ca`` (in a thread)
    once ready, gc freeze per worker, the ledger's last flush, dead workers' metrics."""

    def when_ready(server: Any) -> None:
        start_health_server(serving, ready)
        if register_ca is not None:
            threading.Thread(target=register_ca, daemon=True).start()
        log.info("leasegate webhook ready: https://%s:%d/validate, health on :%d",
                 serving.bind_address, serving.port, serving.health_port)

    def post_worker_init(worker: Any) -> None:
        # Everything built so far (Flask app, clients, modules) lives as long as
        # the worker: keep it out of the collector's generations so a full
        # collection, which stops every request thread, stays short.
        gc.freeze()

    def worker_exit(server: Any, worker: Any) -> None:
        # A worker stopped gracefully writes the ledger's last counts (one killed loses its last interval).
        ledger = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("leasegate.ledger")
        if ledger is not None:
            ledger.close()

    def child_exit(server: Any, worker: Any) -> None:
        mark_worker_dead(worker.pid)

    return {"when_ready": when_ready, "post_worker_init": post_worker_init, "worker_exit": worker_exit,
            "child_exit": child_exit}


def _certificate(serving: ServingSettings) -> tuple[str, str, bytes | None]:
    """The serving certificate and key files, and the CA's PEM if they were generated here."""
    if serving.tls_cert_file:
        return serving.tls_cert_file, serving.tls_key_file, None
    paths = generate(Path(serving.cert_dir), serving.service_name, serving.service_namespace)
    log.info("generated serving certificate in %s", serving.cert_dir)
    return str(paths.cert_file), str(paths.key_file), paths.ca_pem()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``leasegate-webhook``."""
    settings = parse_settings(argv)
    logging.config.dictConfig(log_config(settings.serving.log_level))
    _prepare_metrics_dir()
    cert_file, key_file, ca_pem = _certificate(settings.serving)
    options = gunicorn_options(settings.serving, cert_file, key_file, hooks_from_settings(settings, ca_pem))

    def build_app() -> Any:
        return create_app_from_settings(settings)

    run_gunicorn(settings.serving, options, build_app)
    return 0


def run_gunicorn(serving: ServingSettings, options: Mapping[str, Any], build_app: Callable[[], Any]) -> None:
    """Serve the WSGI app ``build_app()`` builds in each worker, with ``options``, until shut down.

    The benchmark's allow-everything baseline runs through here too, so it is
    the same stack in every respect but the app.
    """
    # Before gunicorn forks: the workers inherit the malloc thresholds.
    if retain_freed_memory(serving.retain_freed_memory_mib * 1024 * 1024):
        log.info("malloc keeps up to %d MiB of freed memory per process", serving.retain_freed_memory_mib)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # options newer than the installed gunicorn are skipped
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return build_app()

    Server().run()


if __name__ == "__main__":
    sys.exit(main())
