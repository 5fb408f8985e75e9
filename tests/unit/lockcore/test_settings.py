"""lockcore.settings: LEASEGATE_* variables to typed values, and the checks on construction."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockcore.profiles import LockProfile, Profile
from lockcore.settings import LockSettings, SettingsError, Variable, env_overrides, variable, variables


class Mode(str, enum.Enum):
    DENY = "deny"
    WARN = "warn"
    DRYRUN = "dryrun"


@dataclass(frozen=True)
class _Every:
    """One field of each type env_overrides converts."""

    flag: bool = False
    count: int = 0
    seconds: float = 0.0
    names: tuple[str, ...] = ()
    mode: Mode = Mode.DENY
    text: str = ""
    nested: LockSettings = LockSettings()


@dataclass(frozen=True)
class _Renamed:
    """A section whose field declares its (historical) variable."""

    enabled: bool = field(default=True, metadata={"env": "EVENTS"})


@dataclass(frozen=True)
class _Composed:
    events: _Renamed = field(default_factory=_Renamed)
    lock: LockSettings = field(default_factory=lambda: LockSettings(lock_namespace="locks"))
    text: str = ""


CONVERSIONS = [
    ("FLAG", "true", "flag", True), ("FLAG", " Off ", "flag", False), ("FLAG", "1", "flag", True),
    ("COUNT", "42", "count", 42), ("SECONDS", "2.5", "seconds", 2.5),
    ("NAMES", "a, b,,c ", "names", ("a", "b", "c")), ("NAMES", "", "names", ()),
    ("MODE", "WARN", "mode", Mode.WARN), ("TEXT", " kept as is ", "text", " kept as is "),
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


def test_sections_are_read_by_recursion_over_their_defaults() -> None:
    assert env_overrides(_Composed, {}) == {}
    assert env_overrides(_Composed, {"LEASEGATE_EVENTS": "false", "LEASEGATE_PROFILE": "janus"}) == {
        "events": _Renamed(enabled=False), "lock": LockSettings(lock_namespace="locks", profile=Profile.JANUS)}
    assert env_overrides(_Composed, {"LEASEGATE_ENABLED": "false"}) == {}  # the field's name is not its variable
    with pytest.raises(SettingsError, match="lock_namespace"):
        env_overrides(_Composed, {"LEASEGATE_LOCK_NAMESPACE": "Bad_Name"})  # the section's own check


def test_variables_list_every_field_of_every_section() -> None:
    listed = variables(_Composed)
    assert [v.name for v in listed] == ["LEASEGATE_EVENTS", "LEASEGATE_LOCK_NAMESPACE", "LEASEGATE_TXN_ANNOTATION",
                                        "LEASEGATE_PROFILE", "LEASEGATE_CLOCK_SKEW_SECONDS", "LEASEGATE_TEXT"]
    assert listed[0] == Variable("LEASEGATE_EVENTS", ("events", "enabled"), bool, True)
    assert listed[0].read(_Composed()) is True and listed[1].read(_Composed()) == "locks"
    assert variable(_Renamed, "enabled") == "LEASEGATE_EVENTS"


def test_a_variable_claimed_twice_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Twice:
        events: _Renamed = field(default_factory=_Renamed)
        also: bool = field(default=False, metadata={"env": "EVENTS"})

    with pytest.raises(TypeError, match="claimed twice"):
        variables(Twice)


@given(st.text(max_size=20))
def test_any_text_either_converts_or_is_a_settings_error(raw: str) -> None:
    for var in ("FLAG", "COUNT", "SECONDS", "NAMES", "MODE", "TEXT"):
        try:
            env_overrides(_Every, {f"LEASEGATE_{var}": raw})
        except SettingsError:
            pass
