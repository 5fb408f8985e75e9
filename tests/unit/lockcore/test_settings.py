"""lockcore.settings: LEASEGATE_* variables to typed values, and the checks on construction."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.profiles import LockProfile, Profile
from lockcore.settings import LockSettings, SettingsError, env_overrides
from webhook.settings import EnforcementMode, WebhookSettings


@dataclass(frozen=True)
class _Every:
    """One field of each type env_overrides converts."""

    flag: bool = False
    count: int = 0
    seconds: float = 0.0
    names: tuple[str, ...] = ()
    mode: EnforcementMode = EnforcementMode.DENY
    text: str = ""
    nested: LockSettings = LockSettings()


CONVERSIONS = [
    ("FLAG", "true", "flag", True), ("FLAG", " Off ", "flag", False), ("FLAG", "1", "flag", True),
    ("COUNT", "42", "count", 42), ("SECONDS", "2.5", "seconds", 2.5),
    ("NAMES", "a, b,,c ", "names", ("a", "b", "c")), ("NAMES", "", "names", ()),
    ("MODE", "WARN", "mode", EnforcementMode.WARN), ("TEXT", " kept as is ", "text", " kept as is "),
]


@pytest.mark.parametrize(("var", "raw", "field", "value"), CONVERSIONS)
def test_each_type_converts(var: str, raw: str, field: str, value: object) -> None:
    assert env_overrides(_Every, {f"LEASEGATE_{var}": raw}) == {field: value}


@pytest.mark.parametrize(("var", "raw", "says"), [
    ("FLAG", "maybe", "expected true or false"), ("COUNT", "4.5", "invalid literal"),
    ("SECONDS", "soon", "could not convert"), ("MODE", "loud", "expected one of deny, warn, dryrun"),
])
def test_a_bad_value_names_the_variable(var: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as error:
        env_overrides(_Every, {f"LEASEGATE_{var}": raw})
    assert f"LEASEGATE_{var}={raw!r}" in str(error.value) and says in str(error.value)
    assert error.value.__cause__ is not None


def test_nested_settings_and_unknown_variables_are_left_alone() -> None:
    assert env_overrides(_Every, {"LEASEGATE_NESTED": "x", "LEASEGATE_UNKNOWN": "y", "OTHER": "z"}) == {}


@pytest.mark.parametrize(("changes", "says"), [
    ({"lock_namespace": "Not_A_Namespace"}, "lock_namespace"),
    ({"txn_annotation": "not a key!"}, "txn_annotation"),
    ({"clock_skew_seconds": -1}, "clock_skew_seconds"),
    ({"clock_skew_seconds": 301}, "clock_skew_seconds"),
])
def test_construction_refuses_values_that_cannot_work(changes: dict[str, object], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        LockSettings(**changes)  # type: ignore[arg-type]


def test_from_env_and_overrides() -> None:
    settings = LockSettings.from_env({"LEASEGATE_LOCK_NAMESPACE": "locks", "LEASEGATE_PROFILE": "janus"})
    assert (settings.lock_namespace, settings.profile) == ("locks", Profile.JANUS)
    assert settings.lock_profile == LockProfile.of(Profile.JANUS) and not settings.lock_profile.fences
    assert settings.with_overrides(lock_namespace=None, clock_skew_seconds=5).clock_skew_seconds == 5
    webhook = WebhookSettings.from_env({"LEASEGATE_MODE": "dryrun", "LEASEGATE_LOCK_NAMESPACE": "locks"})
    assert webhook.lock.lock_namespace == "locks" and webhook.enforcement.mode is EnforcementMode.DRYRUN


@given(st.text(max_size=20))
def test_any_text_either_converts_or_is_a_settings_error(raw: str) -> None:
    for var in ("FLAG", "COUNT", "SECONDS", "NAMES", "MODE", "TEXT"):
        try:
            env_overrides(_Every, {f"LEASEGATE_{var}": raw})
        except SettingsError:
            pass
