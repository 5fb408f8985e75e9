"""webhook.settings: the knobs' names, read from the environment and flags, never change."""

from __future__ import annotations

import re

import pytest

from webhook.serve import main

# Every LEASEGATE_* variable (and --flag) the webhook read before its settings were split into
# sections, with the default ``leasegate-webhook --help`` printed: the chart, tools/localwebhook.py,
# tests/support and bench/ set these names, so none may change, appear or disappear unnoticed.
VARIABLES = {
    "LOCK_NAMESPACE": "leasegate-system", "TXN_ANNOTATION": "leasegate.io/transaction", "PROFILE": "leasegate",
    "CLOCK_SKEW_SECONDS": "2.0", "MODE": "deny", "NAMESPACE_MODE_LABEL": "leasegate.io/enforcement",
    "LOOKUP_FAILURE_POLICY": "deny", "LEASE_LOOKUP": "cached", "CACHE_MAX_STALENESS_SECONDS": "5.0",
    "LOOKUP_TIMEOUT_SECONDS": "2.0",
    "EXEMPT_USERS": "system:kube-controller-manager,system:kube-scheduler,"
                    "system:serviceaccount:kube-system:namespace-controller,"
                    "system:serviceaccount:kube-system:generic-garbage-collector",
    "EXEMPT_GROUPS": "system:nodes,system:serviceaccounts:kube-system",
    "EXEMPT_NAMESPACES": "kube-system,kube-public,kube-node-lease", "LOCK_ADMIN_GROUPS": "system:masters",
    "REQUIRE_MEMBERS": "False", "DISCLOSE_MEMBERS": "False", "EVENTS": "True", "MAX_BODY_BYTES": "4194304",
    "RETAIN_FREED_MEMORY_MIB": "16", "PORT": "8443", "HEALTH_PORT": "8080", "TLS_CERT_FILE": "",
    "TLS_KEY_FILE": "", "CERT_DIR": "/tmp/leasegate-certs", "SERVICE_NAME": "leasegate",
    "SERVICE_NAMESPACE": "leasegate-system", "WEBHOOK_CONFIG_NAME": "", "BIND_ADDRESS": "0.0.0.0",
    "WORKERS": "0", "THREADS": "4", "GRACEFUL_TIMEOUT_SECONDS": "25.0", "KEEPALIVE_SECONDS": "75",
    "REQUEST_READ_TIMEOUT_SECONDS": "5.0", "KUBECONFIG": "", "EVENT_WINDOW_SECONDS": "60.0",
    "LEDGER_ENABLED": "True", "LEDGER_RETENTION_DAYS": "30.0", "LEDGER_MAX_RESULTS": "500",
    "LEDGER_FLUSH_SECONDS": "5.0", "LOG_LEVEL": "INFO",
}


def test_help_lists_every_flag_with_its_variable_and_default(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one option a line
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    options = re.findall(r"^\s+--([a-z-]+) VALUE\s+LEASEGATE_([A-Z_]+) \(default: (.*)\)$",
                         capsys.readouterr().out, re.M)
    assert {var: default for _, var, default in options} == VARIABLES
    assert len(options) == len(VARIABLES)
    for flag, var, _ in options:
        assert flag == var.lower().replace("_", "-")
