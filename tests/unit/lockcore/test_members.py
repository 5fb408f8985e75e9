"""lockcore.members: the one parser of an identity-bound lock's members (specs, the annotation, admits)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lockcore.members import MAX_MEMBERS, MAX_NAME, Members, MembersError, parse_spec

# spec, what it parses to, how it is shown back (a service account's username as sa:NS:NAME)
SPECS = [
    ("user:alice", ("user", "alice"), "user:alice"),
    ("user:alice@example.com", ("user", "alice@example.com"), "user:alice@example.com"),
    ("user:https://issuer.example#1234", ("user", "https://issuer.example#1234"), "user:https://issuer.example#1234"),
    ("user:system:serviceaccount:shop:ci", ("user", "system:serviceaccount:shop:ci"), "sa:shop:ci"),
    ("user:system:serviceaccount:shop:Not_A_Name", ("user", "system:serviceaccount:shop:Not_A_Name"),
     "user:system:serviceaccount:shop:Not_A_Name"),
    ("group:sre", ("group", "sre"), "group:sre"),
    ("group:system:serviceaccounts:shop", ("group", "system:serviceaccounts:shop"), "group:system:serviceaccounts:shop"),
    ("sa:shop:deployer", ("user", "system:serviceaccount:shop:deployer"), "sa:shop:deployer"),
    ("sa:shop:a.b-c", ("user", "system:serviceaccount:shop:a.b-c"), "sa:shop:a.b-c"),
]
BAD_SPECS = [
    ("alice", "expected user:NAME"),
    ("users:alice", "expected user:NAME"),
    ("user:", f"1 to {MAX_NAME} characters"),
    ("group:", f"1 to {MAX_NAME} characters"),
    ("user: alice", "blanks at its ends"),
    ("user:al\nice", "unprintable"),
    ("user:" + "a" * (MAX_NAME + 1), f"1 to {MAX_NAME} characters"),
    ("sa:shop", "sa:NAMESPACE:NAME"),
    ("sa:Shop:ci", "sa:NAMESPACE:NAME"),
    ("sa:shop:", "sa:NAMESPACE:NAME"),
    ("sa:shop:Bad_Name", "sa:NAMESPACE:NAME"),
]
BAD_ANNOTATIONS = [
    ("", "not JSON"),
    ("v1:user=alice", "not JSON"),
    ("[]", "\"version\": 1"),
    ('{"users":["alice"]}', "\"version\": 1"),
    ('{"version":2,"users":["alice"]}', "\"version\": 1"),
    ('{"version":"1","users":["alice"]}', "\"version\": 1"),
    ('{"version":1}', "at least one member"),
    ('{"version":1,"users":[],"groups":[]}', "at least one member"),
    ('{"version":1,"users":"alice"}', "lists of strings"),
    ('{"version":1,"users":[1]}', "lists of strings"),
    ('{"version":1,"users":["alice"],"admins":["bob"]}', "unknown fields"),
    ('{"version":1,"users":[""]}', f"1 to {MAX_NAME} characters"),
    (json.dumps({"version": 1, "users": [f"u{i}" for i in range(MAX_MEMBERS + 1)]}), f"at most {MAX_MEMBERS}"),
]


@pytest.mark.parametrize(("spec", "parsed", "shown"), SPECS, ids=[s for s, _, _ in SPECS])
def test_specs(spec: str, parsed: tuple[str, str], shown: str) -> None:
    assert parse_spec(spec) == parsed
    assert Members.of([spec]).specs() == (shown,)
    assert Members.of([shown]) == Members.of([spec])


@pytest.mark.parametrize(("spec", "why"), BAD_SPECS, ids=[s[:30] for s, _ in BAD_SPECS])
def test_bad_specs_say_why(spec: str, why: str) -> None:
    with pytest.raises(MembersError) as caught:
        Members.of([spec])
    assert why in str(caught.value) and caught.value.detail and isinstance(caught.value, ValueError)


def test_one_string_is_not_a_list_of_specs() -> None:
    with pytest.raises(MembersError, match="one string"):
        Members.of("user:alice")


@pytest.mark.parametrize(("text", "why"), BAD_ANNOTATIONS, ids=[t[:30] or "empty" for t, _ in BAD_ANNOTATIONS])
def test_bad_annotations_say_why(text: str, why: str) -> None:
    with pytest.raises(MembersError) as caught:
        Members.decode(text)
    assert why in caught.value.detail


ADMITS = [
    ("alice", (), True),
    ("bob", ("sre",), True),
    ("system:serviceaccount:shop:deployer", ("system:serviceaccounts",), True),
    ("bob", ("developers",), False),
    ("", ("developers",), False),
    ("Alice", (), False),  # usernames are case-sensitive, as the API server's
    ("sre", (), False),  # a user named like a member group is not a member
    ("system:serviceaccount:other:deployer", (), False),
]


@pytest.mark.parametrize(("user", "groups", "admitted"), ADMITS, ids=[f"{u}-{g}" for u, g, _ in ADMITS])
def test_admits(user: str, groups: tuple[str, ...], admitted: bool) -> None:
    crew = Members.of(["user:alice", "group:sre", "sa:shop:deployer"])
    assert crew.admits(user, groups) is admitted
    assert not Members.unreadable().admits(user, groups)


def test_encoding_is_versioned_compact_sorted_and_shared() -> None:
    crew = Members.of(["user:bob", "group:sre", "user:alice", "user:bob"])
    assert crew.encode() == '{"groups":["sre"],"users":["alice","bob"],"version":1}'
    assert Members.decode(crew.encode()) is Members.decode(crew.encode()), "one object per distinct value"


def test_changes() -> None:
    crew = Members.of(["user:alice"])
    assert crew.with_user("alice") is crew and crew.with_user("") is crew
    bigger = crew.union(Members.of(["group:sre", "sa:shop:ci"]))
    assert bigger.specs() == ("group:sre", "sa:shop:ci", "user:alice")
    assert bigger.without(Members.of(["group:sre"])).specs() == ("sa:shop:ci", "user:alice")
    assert not crew.without(crew).readable
    with pytest.raises(MembersError, match=f"at most {MAX_MEMBERS}"):
        Members.of([f"group:g{i}" for i in range(MAX_MEMBERS)]).with_user("alice")


@pytest.mark.parametrize("spec", ['user:a"b', "group:a\\b", 'user:x","y'])
def test_quotes_and_backslashes_are_no_member_name(spec: str) -> None:
    """The API server's CEL finds a member as '"name"' in the JSON: a name JSON would escape could match another."""
    with pytest.raises(MembersError, match="double quote or a backslash"):
        Members.of([spec])


# -- properties ----------------------------------------------------------------

_names = st.text(min_size=1, max_size=40).filter(
    lambda n: n == n.strip() and n.isprintable() and '"' not in n and "\\" not in n)
_specs = st.lists(st.one_of(
    _names.map(lambda n: f"user:{n}"), _names.map(lambda n: f"group:{n}"),
    st.from_regex(r"sa:[a-z][a-z0-9]{0,8}:[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)), min_size=1, max_size=20)


@hsettings(max_examples=500)
@given(specs=_specs)
def test_round_trip(specs: list[str]) -> None:
    members = Members.of(specs)
    assert Members.decode(members.encode()) == members
    assert Members.of(members.specs()) == members
    for spec in specs:
        kind, name = parse_spec(spec)
        assert members.admits(name, ()) if kind == "user" else members.admits("nobody-else", (name,))


@hsettings(max_examples=1000)
@given(text=st.one_of(st.text(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["version", "users", "groups", "x"]), inner, max_size=4)).map(json.dumps)))
def test_garbage_never_crashes_only_members_error(text: str) -> None:
    try:
        members = Members.decode(text)
    except MembersError:
        return
    assert members.readable and Members.decode(members.encode()) == members


@hsettings(max_examples=500)
@given(specs=st.lists(st.text(max_size=30), max_size=5))
def test_garbage_specs_never_crash_only_members_error(specs: list[str]) -> None:
    try:
        Members.of(specs)
    except MembersError:
        pass
