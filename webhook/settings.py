"""The webhook's settings: sections of frozen dataclasses, read from ``LEASEGATE_*`` variables.

:class:`WebhookSettings` composes one section per concern, each declared once
and each handed alone to the code that reads it:

==================  ===================================================  =============================
section             what it says                                         read by
==================  ===================================================  =============================
``policy``          the lock settings (``policy.lock``: lockcore's        ``webhook.decision.decide``,
                    :class:`LockSettings`) and the rules' exemptions,     ``webhook.lease_writes``
                    lock admins, members rules (:class:`DecisionPolicy`)
``lookups``         how Leases and holder records are read                ``webhook.leases``,
                    (:class:`Lookups`); the lock profile is handed        ``webhook.transactions``
                    beside it, from ``policy.lock``
``enforcement``     what a refusal means: mode, the namespace label,      ``webhook.outcome.enforce``,
                    unreadable Leases (:class:`Enforcement`)              ``webhook.namespaces``
``events``          WriteBlocked Events (:class:`EventSettings`)          ``webhook.audit.EventRecorder``
``ledger``          the OpenReports ledger (:class:`LedgerSettings`)      ``webhook.ledger.Ledger``
``serving``         ports, TLS, gunicorn, request limits, logging         ``webhook.serve``,
                    (:class:`ServingSettings`)                            ``webhook.probes``, the app
``kubeconfig``      how to reach the API server                           every API client (wiring)
==================  ===================================================  =============================

Each section checks its own values and the rules between them in its
constructor (as client-go's leaderelection checks LeaseDuration > RenewDeadline),
raising :class:`~lockcore.settings.SettingsError` that names the variables.

Names: the Helm chart renders its values into exactly these variables
(charts/leasegate/templates/deployment.yaml) and ``leasegate-webhook --help``
lists the same names, so there is one list of knobs. A field's variable is
``LEASEGATE_<FIELD>``, or the name its ``env`` metadata declares where the
section's field name is shorter (``events.enabled`` is ``LEASEGATE_EVENTS``);
:func:`lockcore.settings.variables` lists them all.

Example::

    >>> s = WebhookSettings.from_env({"LEASEGATE_MODE": "warn", "LEASEGATE_LEDGER_RETENTION_DAYS": "7"})
    >>> s.enforcement.mode, s.ledger.retention_days, s.lock.txn_annotation
    (<EnforcementMode.WARN: 'warn'>, 7.0, 'leasegate.io/transaction')
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from lockcore.settings import LockSettings, env_overrides, refusal


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


def _env(name: str) -> Mapping[str, str]:
    """Field metadata: the field's variable is ``LEASEGATE_<name>`` (its historical name)."""
    return {"env": name}


@dataclass(frozen=True)
class DecisionPolicy:
    """What :func:`webhook.decision.decide` needs: the lock settings and the rules' policy.

    Attributes (variable ``LEASEGATE_<NAME>``):
        lock: what every lock client agrees on (lock namespace, transaction
            annotation, profile, clock skew): ``LEASEGATE_LOCK_NAMESPACE``...
        exempt_users / exempt_groups / exempt_namespaces: writes that always
            pass (comma-separated).
        lock_admin_groups: groups whose members may update or delete a live
            lock Lease they did not take (force-release); comma-separated.
        require_members: every new lock must be identity-bound (a lock Lease
            created without members is refused, so acquire fails saying so).
        disclose_members: name an identity-bound lock's members (and its
            principal) in refusals to non-members; off, they are not told who.
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
    """How the Lease sources (webhook/leases.py) and holder records (webhook/transactions.py) are read.

    Which Leases and records exist is the lock profile's to say
    (``policy.lock.lock_profile``, handed to the sources beside this section).

    Attributes:
        lease_lookup: consistent (one GET per request) | cached (a watch-fed index).
        cache_max_staleness_seconds: in cached mode, how far behind the watch
            may fall before lookups go to the API server instead.
        lookup_timeout_seconds: the API call timeout for a Lease or record read
            (and the namespace label, and ``/readyz``).
    """

    lease_lookup: LeaseLookup = LeaseLookup.CACHED
    cache_max_staleness_seconds: float = 5.0
    lookup_timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("cache_max_staleness_seconds", "lookup_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise refusal(self, name, says="must be positive")


@dataclass(frozen=True)
class Enforcement:
    """What :func:`webhook.outcome.enforce` makes of a refusal.

    Attributes:
        mode: deny | warn | dryrun for writes the lock forbids.
        namespace_mode_label: a namespace label whose value (deny|warn|dryrun)
            makes enforcement in that namespace stricter than ``mode``, never
            weaker (:meth:`EnforcementMode.stricter`); empty: not read.
        lookup_failure_policy: allow | deny when a Lease cannot be read; keep it
            consistent with the chart's failurePolicy.
    """

    mode: EnforcementMode = EnforcementMode.DENY
    namespace_mode_label: str = "leasegate.io/enforcement"
    lookup_failure_policy: FailurePolicy = FailurePolicy.DENY


@dataclass(frozen=True)
class EventSettings:
    """The ``WriteBlocked`` Events (:class:`webhook.audit.EventRecorder`).

    Attributes:
        enabled (``LEASEGATE_EVENTS``): emit an Event for each blocked write.
        window_seconds (``LEASEGATE_EVENT_WINDOW_SECONDS``): blocked writes of
            one object by one user against one holder within this window become
            one Event with a count.
    """

    enabled: bool = field(default=True, metadata=_env("EVENTS"))
    window_seconds: float = field(default=60.0, metadata=_env("EVENT_WINDOW_SECONDS"))

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise refusal(self, "window_seconds", says="must be positive")


@dataclass(frozen=True)
class LedgerSettings:
    """The ledger of blocked writes (webhook/ledger.py); see docs/webhook.md, "The ledger".

    Attributes (``LEASEGATE_LEDGER_<NAME>``):
        enabled: record every refusal in OpenReports ``Report``/``ClusterReport`` objects.
        retention_days: results not seen again for this long are dropped.
        max_results: at most this many results per report; the oldest go first, and are counted.
        flush_seconds: how often each worker process writes what it saw; a killed pod
            loses at most the refusals of its last interval. Shorter than the
            retention, or every result would be dropped before it is written.
    """

    enabled: bool = field(default=True, metadata=_env("LEDGER_ENABLED"))
    retention_days: float = field(default=30.0, metadata=_env("LEDGER_RETENTION_DAYS"))
    max_results: int = field(default=500, metadata=_env("LEDGER_MAX_RESULTS"))
    flush_seconds: float = field(default=5.0, metadata=_env("LEDGER_FLUSH_SECONDS"))

    def __post_init__(self) -> None:
        for name in ("retention_days", "flush_seconds"):
            if getattr(self, name) <= 0:
                raise refusal(self, name, says="must be positive")
        if not 1 <= self.max_results <= 2000:
            raise refusal(self, "max_results", says="must be between 1 and 2000 (a report stays far below the "
                                                    "API server's object size limit)")
        if self.flush_seconds >= self.retention_seconds:
            raise refusal(self, "flush_seconds", "retention_days", says="a flush must come before results expire")

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ServingSettings:
    """How the process serves (webhook/serve.py, webhook/probes.py, the app's body limit).

    Attributes (variable ``LEASEGATE_<NAME>``):
        port / health_port: TLS admission port; plain /healthz, /readyz, /metrics.
            Both listen on ``bind_address``, so they differ (0: any free port).
        bind_address: the address both ports listen on.
        tls_cert_file / tls_key_file: serving certificate (reloaded on change),
            both or neither; neither means generate a CA and certificate at start.
        cert_dir: where generated certificates are written.
        service_name / service_namespace: DNS names for a generated certificate.
        webhook_config_name: the ValidatingWebhookConfiguration whose caBundle
            the webhook keeps in sync with a generated CA (empty: do not touch).
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
        max_body_bytes: larger admission requests are refused with HTTP 413. The
            default (4 MiB) fits a review of the largest object etcd stores
            (object and oldObject of ~1.5 MiB each): a 413 would hand the write to
            failurePolicy instead of the lock check.
        retain_freed_memory_mib: freed memory each process keeps for the next
            large review instead of returning it to the kernel (glibc malloc;
            0 = the C library's defaults). See webhook/allocator.py.
        log_level: DEBUG | INFO | WARNING | ERROR (JSON lines on stderr), for
            the gunicorn master and its workers alike.
    """

    port: int = 8443
    health_port: int = 8080
    bind_address: str = "0.0.0.0"
    tls_cert_file: str = ""
    tls_key_file: str = ""
    cert_dir: str = "/tmp/leasegate-certs"
    service_name: str = "leasegate"
    service_namespace: str = "leasegate-system"
    webhook_config_name: str = ""
    workers: int = 0
    threads: int = 4
    graceful_timeout_seconds: float = 25.0
    keepalive_seconds: int = 75
    request_read_timeout_seconds: float = 5.0
    max_body_bytes: int = 4 * 1024 * 1024
    retain_freed_memory_mib: int = 16
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self._check_ranges()
        if self.port and self.port == self.health_port:
            raise refusal(self, "port", "health_port", says="both listen on the bind address: they must differ")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise refusal(self, "tls_cert_file", "tls_key_file", says="give both or neither")

    def _check_ranges(self) -> None:
        ranges = {"port": (0, 65535), "health_port": (0, 65535), "workers": (0, None), "threads": (1, None),
                  "graceful_timeout_seconds": (0, None), "keepalive_seconds": (0, None),
                  "max_body_bytes": (1024, None), "retain_freed_memory_mib": (0, 1024)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                raise refusal(self, name, says=f"must be between {low} and {high}" if high is not None
                              else f"must be at least {low}")
        if self.request_read_timeout_seconds <= 0:
            raise refusal(self, "request_read_timeout_seconds", says="must be positive")
        if self.log_level.upper() not in _LOG_LEVELS:
            raise refusal(self, "log_level", says=f"must be one of {', '.join(_LOG_LEVELS)}")


@dataclass(frozen=True)
class WebhookSettings:
    """Everything the webhook process can be told: one section per concern (see the module doc).

    The lock settings are the policy's (``policy.lock``; :attr:`lock` reads
    them), not a section beside it: :func:`webhook.decision.decide` needs them
    with the exemptions, and a second copy could disagree with the first. The
    Lease sources take ``lock.lock_profile`` as an argument, not a copy in
    their section.

    ``kubeconfig`` (``LEASEGATE_KUBECONFIG``: the kubeconfig file to reach the
    API server; empty: in-cluster config, or ``KUBECONFIG``) stays at the top:
    no section reads it, the wiring (``webhook.app.create_app_from_settings``,
    ``webhook.serve``) builds the API clients from it and hands the clients to
    the sections' consumers. ``log_level`` is serving's (gunicorn configures
    the master's and the workers' logging from it).
    """

    policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    lookups: Lookups = field(default_factory=Lookups)
    enforcement: Enforcement = field(default_factory=Enforcement)
    events: EventSettings = field(default_factory=EventSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    kubeconfig: str = ""

    @property
    def lock(self) -> LockSettings:
        """The lock settings every lock client agrees on (the policy's)."""
        return self.policy.lock

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """Read every section's ``LEASEGATE_*`` variables over the defaults."""
        return cls(**env_overrides(cls, os.environ if environ is None else environ))
