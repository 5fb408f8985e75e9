"""Per-namespace enforcement mode: a namespace label overrides the global mode.

Read only on the rare path (a write a lock forbids), and cached for
``ttl_seconds`` so a burst of blocked writes costs one GET per namespace.

Example::

    modes = NamespaceModes(api, "leasegate.io/enforcement", ttl_seconds=10, timeout=2)
    modes.get("shop")   # EnforcementMode.WARN when the namespace is labelled warn, else None
"""

from __future__ import annotations

import logging
import threading

from lockcore.clock import SYSTEM_CLOCK, Clock
from lockcore.kube import namespace_path
from webhook.apiserver import ApiServer, ApiServerError
from webhook.settings import EnforcementMode

log = logging.getLogger("leasegate.namespaces")


class NamespaceModes:
    """Look up (and cache) the mode a namespace label asks for."""

    def __init__(self, api: ApiServer, label: str, *, ttl_seconds: float = 10.0, timeout: float = 2.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._api = api
        self._label = label
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._cache: dict[str, tuple[float, EnforcementMode | None]] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, namespace: str) -> EnforcementMode | None:
        """The override for ``namespace``, or None (no label, bad value, or unreadable)."""
        now = self._clock.monotonic()
        with self._lock:
            hit = self._cache.get(namespace)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        mode = self._fetch(namespace)
        with self._lock:
            self._cache[namespace] = (now, mode)
        return mode

    def _fetch(self, namespace: str) -> EnforcementMode | None:
        try:
            status, body = self._api.get_json(namespace_path(namespace), timeout=self._timeout)
        except ApiServerError as exc:
            log.warning("cannot read namespace %s for its enforcement label: %s", namespace, exc)
            return None
        if status != 200 or not isinstance(body, dict):
            return None
        value = ((body.get("metadata") or {}).get("labels") or {}).get(self._label)
        if not value:
            return None
        try:
            return EnforcementMode(str(value).lower())
        except ValueError:
            log.warning("namespace %s: label %s=%r is not deny, warn or dryrun; ignored",
                        namespace, self._label, value)
            return None
