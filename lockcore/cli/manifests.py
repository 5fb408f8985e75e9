"""Manifests as kubectl reads them, stamped with a transaction: the one definition ``apply``,
``stamp`` and ``run`` share.

kubectl itself reads the files (YAML or JSON, several documents, Lists,
directories, ``-`` for stdin) and stamps them locally, so ``run -f`` locks
exactly the objects ``apply -f`` writes, and ``stamp`` changes them exactly as
``apply`` does: the ``leasegate.io/transaction`` annotation, and the
``leasegate.io/locked`` marker a locked name must be created with (or its
later writes would not reach the webhook; release removes it).

The result is written as JSON documents (after ``---`` for a YAML stream):
JSON is YAML that every reader reads alike, where a YAML dump can leave a
string such as ``1e3`` unquoted for a reader to take as a number::

    >>> print(documents([{"kind": "ConfigMap"}], "yaml"), end="")
    ---
    {"kind": "ConfigMap"}
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Literal

from lockcore.cli.context import Context
from lockcore.cli.failures import UsageError
from lockcore.kube import LOCKED_LABEL
from lockcore.pipeline import json_stream

# Characters a YAML reader would not take literally inside a double-quoted string: outside YAML's
# printable set, or line breaks in YAML 1.1 (NEL, U+2028/9). Written as JSON escapes, which YAML
# reads alike; the rest of the text is UTF-8 as is, since a surrogate-pair escape (JSON's
# spelling of an emoji) is not one character to every YAML reader.
_ESCAPED_FOR_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def stamped_objects(ctx: Context, files: list[str], txn: str) -> list[Any]:
    """The objects in ``files`` (Lists flattened) with the transaction's annotation and marker."""
    if files.count("-") > 1:
        raise UsageError("-f - (stdin) can be given once")
    source = sys.stdin.read() if "-" in files else None
    if source is not None and not source.strip() and len(files) == 1:
        return []  # nothing rendered (an empty chart): nothing to stamp
    file_args = [arg for name in files for arg in ("-f", name)]
    annotated = ctx.kubectl("annotate", "--local", "--overwrite", "-o", "json", *file_args,
                            f"{ctx.settings.txn_annotation}={txn}", input=source)
    return json_stream(ctx.kubectl("label", "--local", "--overwrite", "-o", "json", "-f", "-",
                                   f"{LOCKED_LABEL}={txn}", input=annotated))


def documents(objects: list[Any], output: Literal["json", "yaml"]) -> str:
    """``objects`` as a stream: concatenated JSON documents, or a YAML stream of JSON documents."""
    if output == "json":
        return "".join(json.dumps(obj, indent=4) + "\n" for obj in objects)
    return "".join(f"---\n{_yaml_safe(json.dumps(obj, ensure_ascii=False))}\n" for obj in objects)


def _yaml_safe(text: str) -> str:
    return _ESCAPED_FOR_YAML.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
