"""webhook.settings: sections read from the environment and flags under unchanged names, each checking itself."""

from __future__ import annotations

import enum
import re
from typing import Any

import pytest

from lockcore.kube import ENV_PREFIX
from lockcore.settings import LockSettings, SettingsError, Variable, variables
from webhook.serve import main, parse_settings
from webhook.settings import (
    EnforcementMode,
    EventSettings,
    LedgerSettings,
    Lookups,
    ServingSettings,
    WebhookSettings,
)

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


# Where each variable lives now (the section, then the field when it is not the variable's name).
SECTIONS = {
    "policy": {"EXEMPT_USERS", "EXEMPT_GROUPS", "EXEMPT_NAMESPACES", "LOCK_ADMIN_GROUPS", "REQUIRE_MEMBERS",
               "DISCLOSE_MEMBERS"},
    "lookups": {"LEASE_LOOKUP", "CACHE_MAX_STALENESS_SECONDS", "LOOKUP_TIMEOUT_SECONDS"},
    "enforcement": {"MODE", "NAMESPACE_MODE_LABEL", "LOOKUP_FAILURE_POLICY"},
    "events": {"EVENTS", "EVENT_WINDOW_SECONDS"},
    "ledger": {"LEDGER_ENABLED", "LEDGER_RETENTION_DAYS", "LEDGER_MAX_RESULTS", "LEDGER_FLUSH_SECONDS"},
    "serving": {"PORT", "HEALTH_PORT", "BIND_ADDRESS", "TLS_CERT_FILE", "TLS_KEY_FILE", "CERT_DIR", "SERVICE_NAME",
                "SERVICE_NAMESPACE", "WEBHOOK_CONFIG_NAME", "WORKERS", "THREADS", "GRACEFUL_TIMEOUT_SECONDS",
                "KEEPALIVE_SECONDS", "REQUEST_READ_TIMEOUT_SECONDS", "MAX_BODY_BYTES", "RETAIN_FREED_MEMORY_MIB",
                "LOG_LEVEL"},
}
RENAMED = {"EVENTS": ("events", "enabled"), "EVENT_WINDOW_SECONDS": ("events", "window_seconds"),
           "LEDGER_ENABLED": ("ledger", "enabled"), "LEDGER_RETENTION_DAYS": ("ledger", "retention_days"),
           "LEDGER_MAX_RESULTS": ("ledger", "max_results"), "LEDGER_FLUSH_SECONDS": ("ledger", "flush_seconds")}


def _path(name: str) -> tuple[str, ...]:
    if name in RENAMED:
        return RENAMED[name]
    if name in {"LOCK_NAMESPACE", "TXN_ANNOTATION", "PROFILE", "CLOCK_SKEW_SECONDS"}:
        return ("policy", "lock", name.lower())
    section = next((section for section, names in SECTIONS.items() if name in names), None)
    return (name.lower(),) if section is None else (section, name.lower())


def test_the_sections_claim_exactly_todays_variables() -> None:
    listed = {v.name.removeprefix(ENV_PREFIX): v for v in variables(WebhookSettings)}
    assert sorted(listed) == sorted(VARIABLES)
    assert {name: v.path for name, v in listed.items()} == {name: _path(name) for name in VARIABLES}


_NOT_DEFAULT = {"LOCK_NAMESPACE": "locks", "TXN_ANNOTATION": "example.com/txn", "LOG_LEVEL": "DEBUG",
                "HEALTH_PORT": "8081"}


def _another(variable: Variable) -> tuple[str, Any]:
    """A valid value of ``variable`` other than its default, as a variable and as read."""
    name, kind, default = variable.name.removeprefix(ENV_PREFIX), variable.kind, variable.default
    if name in _NOT_DEFAULT:
        raw = _NOT_DEFAULT[name]
        return raw, kind(raw)
    if kind is bool:
        return str(not default).lower(), not default
    if kind in (int, float):
        return str(default + 1), default + 1
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        other = next(member for member in kind if member is not default)
        return other.value.upper(), other
    if kind == tuple[str, ...]:
        return " a, b,", ("a", "b")
    return f"/x/{name.lower()}", f"/x/{name.lower()}"


def test_every_variable_reaches_its_sections_field() -> None:
    chosen = {v.name: _another(v) for v in variables(WebhookSettings)}
    settings = WebhookSettings.from_env({name: raw for name, (raw, _) in chosen.items()})
    for v in variables(WebhookSettings):
        assert v.read(settings) == chosen[v.name][1], v.name
        assert v.read(WebhookSettings()) == v.default, v.name


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEASEGATE_MODE", "dryrun")
    monkeypatch.setenv("LEASEGATE_EVENT_WINDOW_SECONDS", "30")
    settings = parse_settings(["--mode", "warn", "--ledger-retention-days", "7", "--lock-namespace", "locks"])
    assert settings.enforcement.mode is EnforcementMode.WARN and settings.events.window_seconds == 30
    assert settings.ledger == LedgerSettings(retention_days=7) and settings.ledger.retention_seconds == 7 * 86400
    assert settings.lock is settings.policy.lock and settings.lock == LockSettings(lock_namespace="locks")


def test_a_value_that_cannot_work_is_a_usage_error_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(["--ledger-flush-seconds", "0"])
    assert exited.value.code == 2
    assert "LEASEGATE_LEDGER_FLUSH_SECONDS=0.0: must be positive" in capsys.readouterr().err


# -- each section checks its values and the rules between them, naming the variables ------------

REFUSED: list[tuple[Any, dict[str, Any], str]] = [
    (Lookups, {"lookup_timeout_seconds": 0}, "LEASEGATE_LOOKUP_TIMEOUT_SECONDS=0: must be positive"),
    (Lookups, {"cache_max_staleness_seconds": -1}, "LEASEGATE_CACHE_MAX_STALENESS_SECONDS=-1"),
    (EventSettings, {"window_seconds": 0}, "LEASEGATE_EVENT_WINDOW_SECONDS=0"),
    (LedgerSettings, {"max_results": 0}, "LEASEGATE_LEDGER_MAX_RESULTS=0: must be between 1 and 2000"),
    (LedgerSettings, {"max_results": 2001}, "LEASEGATE_LEDGER_MAX_RESULTS=2001"),
    (LedgerSettings, {"flush_seconds": 0}, "LEASEGATE_LEDGER_FLUSH_SECONDS=0"),
    (LedgerSettings, {"retention_days": -1}, "LEASEGATE_LEDGER_RETENTION_DAYS=-1"),
    (LedgerSettings, {"retention_days": 1 / 24, "flush_seconds": 3600},
     "LEASEGATE_LEDGER_FLUSH_SECONDS=3600, LEASEGATE_LEDGER_RETENTION_DAYS=0.041666666666666664: a flush must "
     "come before results expire"),
    (ServingSettings, {"tls_cert_file": "/tls.crt"},
     "LEASEGATE_TLS_CERT_FILE='/tls.crt', LEASEGATE_TLS_KEY_FILE='': give both or neither"),
    (ServingSettings, {"tls_key_file": "/tls.key"}, "give both or neither"),
    (ServingSettings, {"health_port": 8443},
     "LEASEGATE_PORT=8443, LEASEGATE_HEALTH_PORT=8443: both listen on the bind address"),
    (ServingSettings, {"port": 65536}, "LEASEGATE_PORT=65536: must be between 0 and 65535"),
    (ServingSettings, {"workers": -1}, "LEASEGATE_WORKERS=-1: must be at least 0"),
    (ServingSettings, {"threads": 0}, "LEASEGATE_THREADS=0: must be at least 1"),
    (ServingSettings, {"graceful_timeout_seconds": -1}, "LEASEGATE_GRACEFUL_TIMEOUT_SECONDS=-1"),
    (ServingSettings, {"max_body_bytes": 1023}, "LEASEGATE_MAX_BODY_BYTES=1023: must be at least 1024"),
    (ServingSettings, {"retain_freed_memory_mib": -1}, "LEASEGATE_RETAIN_FREED_MEMORY_MIB=-1"),
    (ServingSettings, {"retain_freed_memory_mib": 1025}, "LEASEGATE_RETAIN_FREED_MEMORY_MIB=1025"),
    (ServingSettings, {"request_read_timeout_seconds": 0}, "LEASEGATE_REQUEST_READ_TIMEOUT_SECONDS=0"),
    (ServingSettings, {"log_level": "LOUD"}, "LEASEGATE_LOG_LEVEL='LOUD': must be one of DEBUG, INFO, WARNING"),
]


@pytest.mark.parametrize(("section", "values", "says"), REFUSED, ids=[f"{c[0].__name__}-{c[2][10:40]}" for c in REFUSED])
def test_a_section_refuses_what_cannot_work(section: Any, values: dict[str, Any], says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        section(**values)
    assert says in str(refused.value)


ACCEPTED: list[tuple[Any, dict[str, Any]]] = [
    (ServingSettings, {"tls_cert_file": "/tls.crt", "tls_key_file": "/tls.key"}),
    (ServingSettings, {"port": 0, "health_port": 0}),  # each any free port
    (ServingSettings, {"retain_freed_memory_mib": 0, "workers": 0, "graceful_timeout_seconds": 0}),
    (LedgerSettings, {"retention_days": 1, "flush_seconds": 3600}),
    (Lookups, {"lookup_timeout_seconds": 5, "cache_max_staleness_seconds": 5}),  # tests/integration/reliability
]


@pytest.mark.parametrize(("section", "values"), ACCEPTED)
def test_edges_that_work_are_accepted(section: Any, values: dict[str, Any]) -> None:
    made = section(**values)
    assert all(getattr(made, name) == value for name, value in values.items())


def test_the_composition_is_its_sections() -> None:
    settings = WebhookSettings()
    assert settings.lock is settings.policy.lock and settings.lock == LockSettings()
    assert settings.serving == ServingSettings() and settings.ledger.retention_seconds == 30 * 86400
    assert WebhookSettings.from_env({}) == settings


@pytest.mark.parametrize(("configured", "label", "effective"), [
    (EnforcementMode.DENY, EnforcementMode.DRYRUN, EnforcementMode.DENY),
    (EnforcementMode.DENY, EnforcementMode.WARN, EnforcementMode.DENY),
    (EnforcementMode.WARN, EnforcementMode.DRYRUN, EnforcementMode.WARN),
    (EnforcementMode.DRYRUN, EnforcementMode.DENY, EnforcementMode.DENY),
    (EnforcementMode.DRYRUN, EnforcementMode.WARN, EnforcementMode.WARN),
    (EnforcementMode.WARN, None, EnforcementMode.WARN),
])
def test_a_namespace_label_only_makes_enforcement_stricter(configured: EnforcementMode,
                                                           label: EnforcementMode | None,
                                                           effective: EnforcementMode) -> None:
    assert configured.stricter(label) is effective
