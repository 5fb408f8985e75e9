"""The members of an identity-bound lock: who, besides the transaction annotation, must be writing.

A lock with members (docs/threat-model.md, "identity-bound locks") admits a
write only from an identity the API server authenticated as one of them:
a username, or one of the request's groups. Service accounts are users
(``sa:NS:NAME`` is the username ``system:serviceaccount:NS:NAME``). The members
live on the lock Lease in one annotation, :data:`MEMBERS_ANNOTATION`, whose
value is versioned JSON::

    {"groups":["sre"],"users":["alice","system:serviceaccount:shop:deployer"],"version":1}

(compact, keys and names sorted). This module is the one parser: lockcore
writes and shows members with it, :class:`lockcore.lease.LeaseState` reads
them with it, and so does the webhook. Names are validated (no empty names,
no control characters, quotes or backslashes, at most :data:`MAX_NAME` characters, at most
:data:`MAX_MEMBERS` members), so an annotation always fits the API server's
limits. Anything else raises :class:`MembersError`, a ``ValueError``.

Example::

    >>> m = Members.of(["user:alice", "group:sre", "sa:shop:deployer"])
    >>> m.admits("bob", ("sre",)), m.admits("bob", ("dev",))
    (True, False)
    >>> Members.decode(m.encode()) == m
    True
    >>> m.specs()
    ('group:sre', 'sa:shop:deployer', 'user:alice')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lockcore.kube import DNS_LABEL, DNS_SUBDOMAIN

__all__ = ["MAX_MEMBERS", "MAX_NAME", "MEMBERS_ANNOTATION", "VERSION", "Members", "MembersError"]

MEMBERS_ANNOTATION = "leasegate.io/members"
VERSION = 1
MAX_MEMBERS = 64
MAX_NAME = 512
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
_KINDS = ("user", "group", "sa")


class MembersError(ValueError):
    """A member spec or a members annotation is not valid.

    ``text`` is the offending input (shortened), ``detail`` what is wrong with it.
    """

    def __init__(self, text: str, detail: str) -> None:
        self.text = text[:80]
        self.detail = detail
        super().__init__(f"invalid members {self.text!r}: {detail}")


@dataclass(frozen=True, slots=True)
class Members:
    """Users and groups of an identity-bound lock (sorted tuples: compact, hashable, comparable).

    Empty only as :meth:`unreadable`, the value a Lease whose annotation
    cannot be parsed reads as: it admits nobody (fail closed).
    """

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def of(cls, specs: Iterable[str]) -> Members:
        """Members from specs ``user:NAME``, ``group:NAME``, ``sa:NAMESPACE:NAME`` (may be empty).

        >>> Members.of(["sa:shop:ci"]).users
        ('system:serviceaccount:shop:ci',)
        """
        if isinstance(specs, str):
            raise MembersError(specs, "expected a list of member specs, got one string")
        specs = list(specs)
        users: list[str] = []
        groups: list[str] = []
        for spec in specs:
            kind, name = parse_spec(spec)
            (groups if kind == "group" else users).append(name)
        return cls._checked(users, groups, ",".join(specs))

    @classmethod
    def unreadable(cls) -> Members:
        """What an unparseable annotation means: a member-bound lock nobody is a member of."""
        return _UNREADABLE

    @property
    def readable(self) -> bool:
        return bool(self.users or self.groups)

    def admits(self, username: str, groups: Sequence[str]) -> bool:
        """Whether an authenticated requester (username and groups) is a member.

        >>> Members(users=("alice",)).admits("alice", ())
        True
        """
        return (bool(username) and username in self.users) or any(g in self.groups for g in groups)

    def with_user(self, username: str) -> Members:
        """These members and ``username`` (the acquiring principal is always one)."""
        return self if not username or username in self.users else self._checked(
            [*self.users, username], list(self.groups), username)

    def union(self, other: Members) -> Members:
        return self._checked([*self.users, *other.users], [*self.groups, *other.groups], "")

    def without(self, other: Members) -> Members:
        """These members minus ``other``'s (may come out empty: callers refuse that)."""
        return Members(tuple(u for u in self.users if u not in other.users),
                       tuple(g for g in self.groups if g not in other.groups))

    def encode(self) -> str:
        """The annotation value (versioned, compact JSON)."""
        return json.dumps({"groups": list(self.groups), "users": list(self.users), "version": VERSION},
                          separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    @classmethod
    def decode(cls, text: str) -> Members:
        """Parse an annotation value; raises :class:`MembersError` for anything but a valid one.

        Identical values share one object (locks of one transaction carry the
        same members: the webhook's cache holds one copy, not one per Lease).
        """
        if not isinstance(text, str):
            raise MembersError(repr(text), "the annotation value must be a string")
        return _decode(text)

    def specs(self) -> tuple[str, ...]:
        """The members as specs, service accounts as ``sa:NS:NAME`` (what the CLI takes and shows)."""
        return tuple(sorted([*(f"group:{g}" for g in self.groups), *(_user_spec(u) for u in self.users)]))

    def as_json(self) -> dict[str, list[str]]:
        return {"users": list(self.users), "groups": list(self.groups)}

    @classmethod
    def _checked(cls, users: Iterable[str], groups: Iterable[str], text: str) -> Members:
        members = cls(tuple(sorted(set(users))), tuple(sorted(set(groups))))
        for name in (*members.users, *members.groups):
            _check_name(name, text)
        if len(members.users) + len(members.groups) > MAX_MEMBERS:
            raise MembersError(text, f"at most {MAX_MEMBERS} members")
        return members


_UNREADABLE = Members()


def parse_spec(spec: str) -> tuple[str, str]:
    """``("user"|"group", name)`` of one spec; ``sa:NS:NAME`` becomes its username.

    >>> parse_spec("group:sre"), parse_spec("sa:shop:ci")
    (('group', 'sre'), ('user', 'system:serviceaccount:shop:ci'))
    """
    if not isinstance(spec, str):
        raise MembersError(repr(spec), "a member spec must be a string")
    kind, sep, name = spec.partition(":")
    if not sep or kind not in _KINDS:
        raise MembersError(spec, "expected user:NAME, group:NAME or sa:NAMESPACE:NAME")
    if kind == "sa":
        namespace, sep, account = name.partition(":")
        if not sep or not DNS_LABEL.fullmatch(namespace) or len(account) > 253 \
                or not DNS_SUBDOMAIN.fullmatch(account):
            raise MembersError(spec, "sa:NAMESPACE:NAME needs a namespace (DNS label) and a service account name")
        return "user", f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{account}"
    _check_name(name, spec)
    return kind, name


def _check_name(name: str, text: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise MembersError(text, f"a name must have 1 to {MAX_NAME} characters")
    # Control characters (and surrounding blanks) are no name the API server
    # authenticates; they would only make messages and listings lie.
    if name != name.strip() or any(not ch.isprintable() for ch in name):
        raise MembersError(text, f"name {name[:40]!r} has blanks at its ends or unprintable characters")
    # The API server's CEL finds a member as '"name"' in the annotation's JSON
    # (webhook/cel.py): a name JSON would escape could be mistaken for others.
    if '"' in name or "\\" in name:
        raise MembersError(text, f"name {name[:40]!r} contains a double quote or a backslash")


def _user_spec(username: str) -> str:
    namespace, _, account = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    if username.startswith(SERVICE_ACCOUNT_PREFIX) and DNS_LABEL.fullmatch(namespace) \
            and len(account) <= 253 and DNS_SUBDOMAIN.fullmatch(account):
        return f"sa:{namespace}:{account}"
    return f"user:{username}"


@lru_cache(maxsize=4096)
def _decode(text: str) -> Members:
    try:
        value: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MembersError(text, f"not JSON ({exc.__class__.__name__})") from exc
    if not isinstance(value, dict) or value.get("version") != VERSION:
        raise MembersError(text, f"expected a JSON object with \"version\": {VERSION}")
    if set(value) - {"version", "users", "groups"}:
        raise MembersError(text, f"unknown fields {sorted(set(value) - {'version', 'users', 'groups'})}")
    users, groups = value.get("users", []), value.get("groups", [])
    for names in (users, groups):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MembersError(text, "users and groups must be lists of strings")
    members = Members._checked(users, groups, text)
    if not members.readable:
        raise MembersError(text, "a members annotation names at least one member")
    return members
