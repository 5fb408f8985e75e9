"""The lock settings shared by the library, the CLI, the webhook and the chart.

Every knob that two components must agree on lives here, once. The webhook's
own settings (``webhook.settings``) are sections that embed a
:class:`LockSettings`, and the Helm chart passes its values to the webhook as
the same ``LEASEGATE_*`` environment variables that :meth:`LockSettings.from_env`
reads, so a lock taken with the CLI and a write judged by the webhook always
agree on lease names, namespaces, labels and expiry.

Settings are frozen dataclasses; a field whose type is itself a settings
dataclass is a *section*, read and listed by recursion (:func:`env_overrides`,
:func:`variables`). A field's variable is ``LEASEGATE_<FIELD NAME>``, unless
the field declares another with ``field(metadata={"env": "EVENTS"})`` (a
section's field whose name is shorter than its historical variable).

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
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass, replace
from typing import Any

from lockcore.kube import DNS_LABEL, ENV_PREFIX, QUALIFIED_KEY
from lockcore.profiles import LockProfile, Profile

__all__ = ["ENV_PREFIX", "LockSettings", "Profile", "SettingsError", "Variable", "env_overrides", "refusal",
           "variable", "variables"]


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


def variable(settings_type: type, name: str) -> str:
    """The ``LEASEGATE_*`` variable of field ``name`` of a settings dataclass.

    >>> variable(LockSettings, "lock_namespace")
    'LEASEGATE_LOCK_NAMESPACE'
    """
    return _variable(next(f for f in fields(settings_type) if f.name == name))


def _variable(field: Field[Any]) -> str:
    return ENV_PREFIX + str(field.metadata.get("env", field.name.upper()))


def refusal(section: object, *names: str, says: str) -> SettingsError:
    """A SettingsError naming the variables (and values) of ``section``'s fields ``names``.

    >>> str(refusal(LockSettings(), "clock_skew_seconds", says="must be larger"))
    'LEASEGATE_CLOCK_SKEW_SECONDS=2.0: must be larger'
    """
    given = ", ".join(f"{variable(type(section), name)}={getattr(section, name)!r}" for name in names)
    return SettingsError(f"{given}: {says}")


@dataclass(frozen=True)
class Variable:
    """One ``LEASEGATE_*`` variable: where its value lives in the settings, its type and default."""

    name: str
    path: tuple[str, ...]  # attribute names from the top settings object down to the field
    kind: Any
    default: Any  # dataclasses.MISSING when the field has none

    def read(self, settings: object) -> Any:
        """This variable's value in ``settings`` (an instance of the type it was listed from)."""
        return functools.reduce(getattr, self.path, settings)


def variables(settings_type: type) -> tuple[Variable, ...]:
    """Every variable of a settings dataclass, sections included, in field order.

    Raises TypeError if two fields claim one variable (a programming error).
    """
    found = tuple(_variables(settings_type, ()))
    names = [v.name for v in found]
    if len(set(names)) != len(names):
        raise TypeError(f"{settings_type.__name__}: a variable is claimed twice: {sorted(names)}")
    return found


def _variables(settings_type: type, path: tuple[str, ...]) -> typing.Iterator[Variable]:
    hints = _type_hints(settings_type)
    for field in fields(settings_type):
        kind = hints[field.name]
        if is_dataclass(kind):
            yield from _variables(typing.cast(type, kind), (*path, field.name))
        else:
            yield Variable(_variable(field), (*path, field.name), kind, field.default)


def env_overrides(settings_type: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """Convert the ``LEASEGATE_*`` variables naming fields of a settings dataclass.

    Each value is converted to the field's declared type (bool, int, float,
    enum, tuple of strings from a comma-separated list, or str); a value that
    does not convert raises :class:`SettingsError` naming the variable. A
    section (a field whose type is a settings dataclass) is present only when
    some variable of it is set: its default with those overrides, so the
    section's constructor checks the result.
    """
    hints = _type_hints(settings_type)
    values: dict[str, Any] = {}
    for field in fields(settings_type):
        kind = hints[field.name]
        if is_dataclass(kind):
            nested = env_overrides(typing.cast(type, kind), environ)
            if nested:
                values[field.name] = replace(_default(field), **nested)
            continue
        raw = environ.get(_variable(field))
        if raw is None:
            continue
        try:
            values[field.name] = _convert(kind, raw)
        except (ValueError, KeyError) as exc:
            raise SettingsError(f"{_variable(field)}={raw!r}: {exc}") from exc
    return values


def _default(field: Field[Any]) -> Any:
    return field.default_factory() if field.default_factory is not MISSING else field.default


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
