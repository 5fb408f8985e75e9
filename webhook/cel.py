"""CEL the API server evaluates in-process: the rules that need no webhook call.

The registration (:mod:`webhook.registration`, ``matchConditions``) and the
reservation policy (:mod:`webhook.policy`, a ValidatingAdmissionPolicy) are
built from these expressions, so what the API server decides without the
webhook is written once. Every expression here is *total*: it guards each
optional field with ``has()`` or ``in`` before reading it, because an
expression that errors is handed to the failure policy (Fail: refused).

What CEL can prove without a clock or a lookup, and so without the webhook:

* who recorded a lock (the principal annotation on a Lease or a marked object)
  is the requester;
* the requester is a member of an identity-bound lock, read from the members
  annotation's canonical JSON (names never contain ``"`` or ``\\``, see
  :mod:`lockcore.members`, so ``"name"`` occurs in the list only as that name);
* a write carries the marker and the transaction annotation of a Lease.

Example::

    >>> annotation("object", "leasegate.io/holder-principal")
    "(has(object.metadata.annotations) && 'leasegate.io/holder-principal' in object.metadata.annotations ? object.metadata.annotations['leasegate.io/holder-principal'] : '')"
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from lockcore.members import MEMBERS_ANNOTATION, VERSION

USERNAME = "request.userInfo.username"


def literal(text: str) -> str:
    """A CEL single-quoted string literal (keys and names never contain quotes or backslashes)."""
    if "'" in text or "\\" in text:
        raise ValueError(f"{text!r} cannot be a plain CEL literal")
    return f"'{text}'"


def string_list(items: Sequence[str]) -> str:
    """A CEL list of string literals (JSON string escapes are valid CEL)."""
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def annotation(obj: str, key: str) -> str:
    """The value of annotation ``key`` of ``obj`` (a CEL variable), or ``''``."""
    k = literal(key)
    return (f"(has({obj}.metadata.annotations) && {k} in {obj}.metadata.annotations ? "
            f"{obj}.metadata.annotations[{k}] : '')")


def label(obj: str, key: str) -> str:
    """The value of label ``key`` of ``obj``, or ``''``."""
    k = literal(key)
    return f"(has({obj}.metadata.labels) && {k} in {obj}.metadata.labels ? {obj}.metadata.labels[{k}] : '')"


def has_label(obj: str, key: str) -> str:
    k = literal(key)
    return f"(has({obj}.metadata.labels) && {k} in {obj}.metadata.labels)"


def has_annotation(obj: str, key: str) -> str:
    k = literal(key)
    return f"(has({obj}.metadata.annotations) && {k} in {obj}.metadata.annotations)"


def is_member(lease: str) -> str:
    """The requester is a user or in a group that ``lease``'s members annotation lists.

    The annotation is ``{"groups":[...],"users":[...],"version":1}`` (compact,
    sorted): the text between ``"users":[`` and the next ``]`` is the users.
    A name that JSON would escape is never found there: fail closed.
    """
    members = annotation(lease, MEMBERS_ANNOTATION)
    users, groups = _listed(members, "users"), _listed(members, "groups")
    return (f"(({members}.contains('\"users\":[') && {users}.contains('\"' + {USERNAME} + '\"')) || "
            f"({members}.contains('\"groups\":[') && has(request.userInfo.groups) && "
            f"request.userInfo.groups.exists(g, {groups}.contains('\"' + g + '\"'))))")


# lockcore's canonical members JSON (``Members.encode``: compact, keys sorted, names
# without quotes, backslashes or control characters). Anything else is the webhook's to judge.
_NAMES = r'("[^"\\\x00-\x1f]+"(,"[^"\\\x00-\x1f]+")*)?'
CANONICAL_MEMBERS = rf'^\{{"groups":\[{_NAMES}\],"users":\[{_NAMES}\],"version":{VERSION}\}}$'


def lists_requester(obj: str) -> str:
    """``obj``'s members annotation is canonical and names the requester among its users.

    What the webhook asks of the members a new lock records (readable, the
    requester one of them), provable in-process: so an identity-bound lock is
    created without the webhook too.
    """
    members = annotation(obj, MEMBERS_ANNOTATION)
    return (f"({members}.matches({json.dumps(CANONICAL_MEMBERS)}) && {USERNAME} != '' && "
            f"{_listed(members, 'users')}.contains('\"' + {USERNAME} + '\"'))")


def _listed(members: str, key: str) -> str:
    """The text of the ``key`` list in a members JSON (``"a","b"``); callers check it is there."""
    return f"{members}.split('\"{key}\":[')[1].split(']')[0]"


def records(obj: str, principal_key: str) -> str:
    """``obj`` records the requester as the principal that took its lock."""
    return f"({annotation(obj, principal_key)} == {USERNAME} && {USERNAME} != '')"
