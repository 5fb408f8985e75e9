"""The lock settings shared by the library, the CLI, the webhook and the chart.

Every knob that two components must agree on lives here, once. The webhook's
own settings (``webhook.settings``) embed a :class:`LockSettings`, and the Helm
chart passes its values to the webhook as the same ``LEASEGATE_*`` environment
variables that :meth:`LockSettings.from_env` reads, so a lock taken with the CLI
and a write judged by the webhook always agree on lease names, namespaces,
labels and expiry.

Example::

    >>> s = LockSettings.from_env({"LEASEGATE_LOCK_NAMESPACE": "locks"})
    >>> s.lock_namespace
    'locks'
"""

from __future__ import annotations

import enum
import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from lockcore.kube import DNS_LABEL, ENV_PREFIX, QUALIFIED_KEY
from lockcore.profiles import LockProfile, Profile

__all__ = ["ENV_PREFIX", "LockSettings", "Profile", "SettingsError", "env_overrides"]


class SettingsError(ValueError):
    """A setting has a value that cannot work; the message names the setting."""


@dataclass(frozen=True)
class LockSettings:
    """What every lock client and the webhook must agree on.

    Attributes:
        lock_namespace: where the Leases of cluster-scoped objects live.
        txn_annotation: the object annotation by which a write declares its
            transaction.
        profile: the Lease layout (names, labels), see :class:`Profile`.
        clock_skew_seconds: the margin by which a lease is kept alive past its
            nominal expiry before anyone may take it over or write past it.
            It must exceed the worst clock difference between any lock client
            and the webhook; see docs/INVARIANTS.md.
    """

    lock_namespace: str = "leasegate-system"
    txn_annotation: str = "leasegate.io/transaction"
    profile: Profile = Profile.LEASEGATE
    clock_skew_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not DNS_LABEL.fullmatch(self.lock_namespace):
            raise SettingsError(
                f"lock_namespace {self.lock_namespace!r} is not a valid namespace name "
                "(DNS-1123 label)"
            )
        if not QUALIFIED_KEY.fullmatch(self.txn_annotation) or len(self.txn_annotation) > 316:
            raise SettingsError(
                f"txn_annotation {self.txn_annotation!r} is not a valid annotation key"
            )
        if not 0 <= self.clock_skew_seconds <= 300:
            raise SettingsError(
                f"clock_skew_seconds must be between 0 and 300, got {self.clock_skew_seconds}"
            )

    @property
    def lock_profile(self) -> LockProfile:
        """What :attr:`profile` decides (labels, markers, proofs)."""
        return LockProfile.of(self.profile)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LockSettings:
        """Read ``LEASEGATE_<FIELD>`` variables over the defaults."""
        return cls(**env_overrides(cls, os.environ if environ is None else environ))

    def with_overrides(self, **changes: Any) -> LockSettings:
        """Return a copy with the given (non-None) fields replaced, e.g. from CLI flags."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def env_overrides(settings_type: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """Convert the ``LEASEGATE_*`` variables naming fields of a settings dataclass.

    Each value is converted to the field's declared type (bool, int, float,
    enum, tuple of strings from a comma-separated list, or str); a value that
    does not convert raises :class:`SettingsError` naming the variable. Fields
    of a nested settings type are left to that type's own ``from_env``.
    """
    hints = _type_hints(settings_type)
    values: dict[str, Any] = {}
    for field in fields(settings_type):
        raw = environ.get(ENV_PREFIX + field.name.upper())
        if raw is None or is_dataclass(hints[field.name]):
            continue
        try:
            values[field.name] = _convert(hints[field.name], raw)
        except (ValueError, KeyError) as exc:
            raise SettingsError(
                f"{ENV_PREFIX}{field.name.upper()}={raw!r}: {exc}"
            ) from exc
    return values


@functools.cache
def _type_hints(settings_type: type) -> dict[str, Any]:
    return typing.get_type_hints(settings_type)


def _convert(kind: Any, raw: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("expected true or false")
    if kind in (int, float):
        return kind(raw)
    if typing.get_origin(kind) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(raw.strip().lower())
        except ValueError:
            choices = ", ".join(str(member.value) for member in kind)
            raise ValueError(f"expected one of {choices}") from None
    if kind is str:
        return raw
    raise ValueError(f"cannot be set from the environment (type {kind})")
