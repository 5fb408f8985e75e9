"""Manifests as kubectl reads them, stamped with a transaction: the one definition ``apply``,
``stamp`` and ``run`` share.

kubectl itself reads the files (YAML or JSON, several documents, Lists,
directories, ``-`` for stdin) and stamps them locally, so ``run -f`` locks
exactly the objects ``apply -f`` writes, and ``stamp`` changes them exactly as
``apply`` does: the ``leasegate.io/transaction`` annotation, and the
``leasegate.io/locked`` marker a locked name must be created with (or its
later writes would not reach the webhook; release removes it)::

    >>> print(stamp_manifests(ctx, ["web.yaml"], "t42", output="yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from lockcore.cli.context import Context
from lockcore.cli.failures import UsageError
from lockcore.kube import LOCKED_LABEL
from lockcore.pipeline import json_stream


def stamp_manifests(ctx: Context, files: list[str], txn: str, *, output: Literal["json", "yaml"]) -> str:
    """The objects in ``files`` with the transaction's annotation and marker, as kubectl prints them.

    ``json``: one JSON document per object, concatenated; ``yaml``: documents separated by ``---``.
    """
    if files.count("-") > 1:
        raise UsageError("-f - (stdin) can be given once")
    source = sys.stdin.read() if "-" in files else None
    if source is not None and not source.strip() and len(files) == 1:
        return ""  # nothing rendered (an empty chart): nothing to stamp
    file_args = [arg for name in files for arg in ("-f", name)]
    annotated = ctx.kubectl("annotate", "--local", "--overwrite", "-o", "json", *file_args,
                            f"{ctx.settings.txn_annotation}={txn}", input=source)
    return ctx.kubectl("label", "--local", "--overwrite", "-o", output, "-f", "-",
                       f"{LOCKED_LABEL}={txn}", input=annotated)


def manifest_objects(ctx: Context, files: list[str], txn: str) -> list[Any]:
    """The objects in ``files``, as ``apply`` would write them for ``txn``."""
    return json_stream(stamp_manifests(ctx, files, txn, output="json"))
