"""The webhook's settings: one typed object, read from ``LEASEGATE_*`` variables.

The Helm chart renders its values into exactly these variables (see
charts/leasegate/templates/deployment.yaml), and ``leasegate-webhook --help``
documents the same names, so there is one list of knobs. The lock settings
the webhook shares with every lock client are embedded as ``lock``.

Example::

    >>> s = WebhookSettings.from_env({"LEASEGATE_MODE": "warn"})
    >>> s.mode, s.lock.txn_annotation
    (<EnforcementMode.WARN: 'warn'>, 'leasegate.io/transaction')
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from lockcore.profiles import LockProfile, Profile
from lockcore.settings import LockSettings, SettingsError, env_overrides


class EnforcementMode(str, enum.Enum):
    """What happens to a write the lock forbids."""

    DENY = "deny"  # refused with HTTP 403
    WARN = "warn"  # allowed, with a warning kubectl prints
    DRYRUN = "dryrun"  # allowed silently; only audited

    def stricter(self, other: EnforcementMode | None) -> EnforcementMode:
        """The stricter of the two (deny > warn > dryrun); None changes nothing.

        >>> EnforcementMode.DRYRUN.stricter(EnforcementMode.DENY), EnforcementMode.DENY.stricter(None)
        (<EnforcementMode.DENY: 'deny'>, <EnforcementMode.DENY: 'deny'>)
        """
        if other is None:
            return self
        return max(self, other, key=_STRICTNESS.index)


class FailurePolicy(str, enum.Enum):
    """What to answer when the lock Lease cannot be read."""

    ALLOW = "allow"
    DENY = "deny"


class LeaseLookup(str, enum.Enum):
    """How the webhook reads lock Leases."""

    CONSISTENT = "consistent"  # one GET per admission request
    CACHED = "cached"  # a watch-fed in-memory index, bounded staleness


# Identities whose writes must never wait on a lock, or the cluster can wedge:
# the namespace controller finishing a namespace deletion, the garbage
# collector deleting dependents, and the control plane's own controllers.
DEFAULT_EXEMPT_USERS: tuple[str, ...] = (
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
)
# Kubelets update their own objects; kube-system's service accounts are the
# control plane's controllers when kube-controller-manager runs them with their
# own credentials (--use-service-account-credentials, as kubeadm does): the
# deployment controller must still roll out a locked Deployment its holder changed.
DEFAULT_EXEMPT_GROUPS: tuple[str, ...] = ("system:nodes", "system:serviceaccounts:kube-system")
DEFAULT_EXEMPT_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")
# Who may renew, update or delete a live lock Lease it did not take: the
# operators' way out (force-release). system:masters is the cluster admin.
DEFAULT_LOCK_ADMIN_GROUPS: tuple[str, ...] = ("system:masters",)
_STRICTNESS = (EnforcementMode.DRYRUN, EnforcementMode.WARN, EnforcementMode.DENY)


@dataclass(frozen=True)
class DecisionPolicy:
    """What :func:`webhook.decision.decide` needs: the lock settings and the rules' policy.

    See :class:`WebhookSettings` for the meaning of each field.
    """

    lock: LockSettings = field(default_factory=LockSettings)
    exempt_users: tuple[str, ...] = DEFAULT_EXEMPT_USERS
    exempt_groups: tuple[str, ...] = DEFAULT_EXEMPT_GROUPS
    exempt_namespaces: tuple[str, ...] = DEFAULT_EXEMPT_NAMESPACES
    lock_admin_groups: tuple[str, ...] = DEFAULT_LOCK_ADMIN_GROUPS
    require_members: bool = False
    disclose_members: bool = False


@dataclass(frozen=True)
class Lookups:
    """What the Lease sources need (webhook/leases.py); see :class:`WebhookSettings`.

    ``txn_label`` is the label lock Leases carry (the cache watches those);
    ``lock_profile`` says how to find a Lease by its target and where a
    holder's record lives.
    """

    lease_lookup: LeaseLookup = LeaseLookup.CACHED
    cache_max_staleness_seconds: float = 5.0
    lookup_timeout_seconds: float = 2.0
    txn_label: str = "leasegate.io/transaction"
    lock_profile: LockProfile = field(default_factory=lambda: LockProfile.of(Profile.LEASEGATE))


@dataclass(frozen=True)
class Enforcement:
    """What :func:`webhook.outcome.enforce` needs: what a refusal means."""

    mode: EnforcementMode = EnforcementMode.DENY
    lookup_failure_policy: FailurePolicy = FailurePolicy.DENY


@dataclass(frozen=True)
class LedgerSettings:
    """What the ledger of blocked writes needs (webhook/ledger.py); see docs/webhook.md, "The ledger".

    enabled: record every refusal in OpenReports ``Report``/``ClusterReport`` objects.
    retention_seconds: results not seen again for this long are dropped (default 30 days).
    max_results: at most this many results per report; the oldest go first, and are counted.
    flush_seconds: how often each worker process writes what it saw; a killed pod
        loses at most the refusals of its last interval.
    """

    enabled: bool = True
    retention_seconds: float = 30 * 86400.0
    max_results: int = 500
    flush_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.retention_seconds <= 0 or self.flush_seconds <= 0:
            raise SettingsError("ledger_retention_days and ledger_flush_seconds must be positive")
        if not 1 <= self.max_results <= 2000:
            raise SettingsError("ledger_max_results must be between 1 and 2000 (a report stays far below "
                                "the API server's object size limit)")


@dataclass(frozen=True)
class WebhookSettings:
    """Everything the webhook process can be told.

    Attributes (environment variable ``LEASEGATE_<NAME>``):
        mode: deny | warn | dryrun for writes the lock forbids.
        namespace_mode_label: a namespace label whose value (deny|warn|dryrun)
            makes enforcement in that namespace stricter than ``mode``, never
            weaker (:meth:`EnforcementMode.stricter`).
        lookup_failure_policy: allow | deny when a Lease cannot be read; keep it
            consistent with the chart's failurePolicy.
        lease_lookup: consistent | cached.
        cache_max_staleness_seconds: in cached mode, how far behind the watch
            may fall before lookups go to the API server instead.
        lookup_timeout_seconds: the API call timeout for a Lease read.
        exempt_users / exempt_groups / exempt_namespaces: comma-separated.
        lock_admin_groups: groups whose members may update or delete a live
            lock Lease they did not take (force-release); comma-separated.
        require_members: every new lock must be identity-bound (a lock Lease
            created without members is refused, so acquire fails saying so).
        disclose_members: name an identity-bound lock's members (and its
            principal) in refusals to non-members; off, they are not told who.
        events: emit a Kubernetes Event for each blocked write.
        max_body_bytes: larger admission requests are refused with HTTP 413. The
            default (4 MiB) fits a review of the largest object etcd stores
            (object and oldObject of ~1.5 MiB each): a 413 would hand the write to
            failurePolicy instead of the lock check.
        retain_freed_memory_mib: freed memory each process keeps for the next
            large review instead of returning it to the kernel (glibc malloc;
            0 = the C library's defaults). See webhook/allocator.py.
        port / health_port: TLS admission port; plain /healthz, /readyz, /metrics.
        tls_cert_file / tls_key_file: serving certificate (reloaded on change);
            empty means generate a CA and certificate at start.
        cert_dir: where generated certificates are written.
        service_name / service_namespace: DNS names for a generated certificate.
        webhook_config_name: the ValidatingWebhookConfiguration whose caBundle
            the webhook keeps in sync with a generated CA (empty: do not touch).
        bind_address: the address both ports listen on.
        workers / threads: gunicorn worker processes (0: two per CPU) and
            threads per worker (gthread).
        graceful_timeout_seconds: on SIGTERM, how long in-flight requests may
            take to finish before workers are killed.
        keepalive_seconds: how long an idle keep-alive connection from the API
            server is held open (the API server reuses connections).
        request_read_timeout_seconds: how long a client may take to send one
            request (TLS handshake, head and body), counted from its first byte
            (from connect on a new connection); a slower one is disconnected.
            Waiting clients hold no worker thread, so this bounds what a
            slowloris client costs, not who gets served.
        kubeconfig: kubeconfig file to reach the API server (empty: in-cluster
            config, or ``KUBECONFIG``).
        event_window_seconds: blocked writes of one object by one user against
            one holder within this window become one Event with a count.
        ledger_enabled / ledger_retention_days / ledger_max_results /
            ledger_flush_seconds: the ledger of blocked writes (OpenReports,
            :class:`LedgerSettings`).
        log_level: DEBUG | INFO | WARNING | ERROR (JSON lines on stderr).
    """

    lock: LockSettings = field(default_factory=LockSettings)
    mode: EnforcementMode = EnforcementMode.DENY
    namespace_mode_label: str = "leasegate.io/enforcement"
    lookup_failure_policy: FailurePolicy = FailurePolicy.DENY
    lease_lookup: LeaseLookup = LeaseLookup.CACHED
    cache_max_staleness_seconds: float = 5.0
    lookup_timeout_seconds: float = 2.0
    exempt_users: tuple[str, ...] = DEFAULT_EXEMPT_USERS
    exempt_groups: tuple[str, ...] = DEFAULT_EXEMPT_GROUPS
    exempt_namespaces: tuple[str, ...] = DEFAULT_EXEMPT_NAMESPACES
    lock_admin_groups: tuple[str, ...] = DEFAULT_LOCK_ADMIN_GROUPS
    require_members: bool = False
    disclose_members: bool = False
    events: bool = True
    max_body_bytes: int = 4 * 1024 * 1024
    retain_freed_memory_mib: int = 16
    port: int = 8443
    health_port: int = 8080
    tls_cert_file: str = ""
    tls_key_file: str = ""
    cert_dir: str = "/tmp/leasegate-certs"
    service_name: str = "leasegate"
    service_namespace: str = "leasegate-system"
    webhook_config_name: str = ""
    bind_address: str = "0.0.0.0"
    workers: int = 0
    threads: int = 4
    graceful_timeout_seconds: float = 25.0
    keepalive_seconds: int = 75
    request_read_timeout_seconds: float = 5.0
    kubeconfig: str = ""
    event_window_seconds: float = 60.0
    ledger_enabled: bool = True
    ledger_retention_days: float = 30.0
    ledger_max_results: int = 500
    ledger_flush_seconds: float = 5.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise SettingsError("max_body_bytes must be at least 1024")
        if not 0 <= self.retain_freed_memory_mib <= 1024:
            raise SettingsError("retain_freed_memory_mib must be between 0 and 1024")
        if self.lookup_timeout_seconds <= 0:
            raise SettingsError("lookup_timeout_seconds must be positive")
        if self.cache_max_staleness_seconds <= 0:
            raise SettingsError("cache_max_staleness_seconds must be positive")
        for port in (self.port, self.health_port):
            if not 0 <= port <= 65535:
                raise SettingsError(f"port {port} is out of range")
        if self.workers < 0 or self.threads < 1:
            raise SettingsError("workers must be >= 0 and threads >= 1")
        if self.graceful_timeout_seconds < 0 or self.event_window_seconds <= 0:
            raise SettingsError("graceful_timeout_seconds and event_window_seconds must be positive")
        if self.request_read_timeout_seconds <= 0:
            raise SettingsError("request_read_timeout_seconds must be positive")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(f"log_level {self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("tls_cert_file and tls_key_file must be given together")
        _ = self.ledger  # the section checks its own values

    @cached_property
    def policy(self) -> DecisionPolicy:
        """The part the decision reads (built once: it is on every request's path)."""
        return DecisionPolicy(lock=self.lock, exempt_users=self.exempt_users, exempt_groups=self.exempt_groups,
                              exempt_namespaces=self.exempt_namespaces, lock_admin_groups=self.lock_admin_groups,
                              require_members=self.require_members,
                              disclose_members=self.disclose_members)

    @cached_property
    def lookups(self) -> Lookups:
        """The part the Lease sources read."""
        return Lookups(lease_lookup=self.lease_lookup, cache_max_staleness_seconds=self.cache_max_staleness_seconds,
                       lookup_timeout_seconds=self.lookup_timeout_seconds,
                       txn_label=self.lock.lock_profile.txn_label, lock_profile=self.lock.lock_profile)

    @cached_property
    def enforcement(self) -> Enforcement:
        """The part that says what a refusal means."""
        return Enforcement(mode=self.mode, lookup_failure_policy=self.lookup_failure_policy)

    @cached_property
    def ledger(self) -> LedgerSettings:
        """The part the ledger writer reads."""
        return LedgerSettings(enabled=self.ledger_enabled, retention_seconds=self.ledger_retention_days * 86400,
                      max_results=self.ledger_max_results, flush_seconds=self.ledger_flush_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        values = env_overrides(cls, env)
        values.pop("lock", None)
        return cls(lock=LockSettings.from_env(env), **values)

    def with_overrides(self, **changes: Any) -> WebhookSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
