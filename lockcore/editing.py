"""Stamp the transaction annotation into the text ``kubectl edit`` opens.

``kubectl lock edit`` puts the annotation into the object *before* the user's
editor opens, so the user sees it and the saved write carries it. kubectl shows
YAML by default (JSON with ``-o json``), after a header of ``#`` comments.

YAML is stamped by inserting or replacing one line instead of loading and
dumping the document: a YAML round trip through another library can change
what kubectl reads (PyYAML writes the string ``"1e3"`` unquoted, which kubectl
reads as a number), and it would drop the user's layout. kubectl's own output
is regular (two-space indentation, ``metadata:`` at column 0, ``annotations:``
at column 2), which is all this relies on.

>>> print(stamp_edit_text("# header\\nkind: ConfigMap\\nmetadata:\\n  name: cfg\\n",
...                       "leasegate.io/transaction", "t42"), end="")
# header
kind: ConfigMap
metadata:
  annotations:
    leasegate.io/transaction: "t42"
  name: cfg
"""

from __future__ import annotations

import json
import re

_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_META, _ANNOTATIONS, _ENTRY_INDENT = "metadata:", "  annotations:", "    "


class StampError(ValueError):
    """The text is not an object as kubectl edit shows one."""


def stamp_edit_text(text: str, annotation: str, value: str) -> str:
    """``text`` (one object as ``kubectl edit`` shows it) with ``annotation: value`` set."""
    # Only "\n" ends a line here: str.splitlines would also split inside values
    # at characters such as U+2028, which kubectl may print unescaped.
    lines = _LINE.findall(text)
    body_start = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")),
                      len(lines))
    if body_start < len(lines) and lines[body_start].lstrip().startswith("{"):
        return "".join(lines[:body_start]) + _stamp_json("".join(lines[body_start:]), annotation, value)
    return "".join(lines[:body_start] + _stamp_yaml(lines[body_start:], annotation, value))


def _stamp_json(body: str, annotation: str, value: str) -> str:
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise StampError(f"not a JSON object: {exc}") from exc
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        raise StampError("the object has no metadata")
    annotations = metadata.setdefault("annotations", {})
    if not isinstance(annotations, dict):
        raise StampError("metadata.annotations is not a map")
    annotations[annotation] = value
    return json.dumps(obj, indent=4) + "\n"


def _stamp_yaml(lines: list[str], annotation: str, value: str) -> list[str]:
    entry = f"{_ENTRY_INDENT}{_yaml_key(annotation)}: {json.dumps(value)}\n"
    try:
        meta = next(i for i, line in enumerate(lines) if line.rstrip() == _META)
    except StopIteration:
        raise StampError("no top-level 'metadata:' in the object") from None
    end = next((i for i in range(meta + 1, len(lines)) if _indent(lines[i]) == 0), len(lines))
    for i in range(meta + 1, end):
        if _indent(lines[i]) != 2 or _key(lines[i]) != "annotations":
            continue
        inline = lines[i].partition(":")[2].strip()
        if inline == "{}":
            return lines[:i] + [_ANNOTATIONS + "\n", entry] + lines[i + 1:]
        if inline:
            raise StampError(f"metadata.annotations is written inline ({inline[:40]}); write it as a block")
        entries_end = next((j for j in range(i + 1, end) if _indent(lines[j]) <= 2), end)
        for j in range(i + 1, entries_end):
            if _indent(lines[j]) == len(_ENTRY_INDENT) and _key(lines[j]) == annotation:
                value_end = next((k for k in range(j + 1, entries_end) if _indent(lines[k]) <= 4), entries_end)
                return lines[:j] + [entry] + lines[value_end:]
        return lines[:i + 1] + [entry] + lines[i + 1:]
    return lines[:meta + 1] + [_ANNOTATIONS + "\n", entry] + lines[meta + 1:]


def _indent(line: str) -> int:
    """Indentation of a content line; blank lines belong to the block they sit in."""
    if not line.strip():
        return 1 << 30
    return len(line) - len(line.lstrip(" "))


def _key(line: str) -> str:
    """The key of a ``key: value`` line, unquoted (kubectl quotes keys only when it must)."""
    stripped = line.strip()
    if stripped[:1] in ('"', "'"):
        close = stripped.find(stripped[0], 1)
        return stripped[1:close] if close > 0 else stripped
    return stripped.partition(":")[0]


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)
