"""``kubectl lock`` only: run the real kubectl so that its writes carry the transaction.

``apply`` stamps every object it applies, ``delete`` stamps then deletes,
``edit`` opens the object with the stamp already in it (kubectl runs
:func:`edit_wrapper` as the editor)::

    kubectl lock apply -f web.yaml --txn t42
    kubectl lock edit deployment/web -n shop --txn t42
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from lockcore.cli.context import Context
from lockcore.cli.manifests import documents, stamped_objects
from lockcore.cli.parser import EXIT_ERROR, EXIT_OK
from lockcore.editing import StampError, stamp_edit_text

EDIT_WRAPPER = "_edit-wrapper"
_WRAPPED_EDITOR_ENV = "LEASEGATE_WRAPPED_EDITOR"


def _cmd_apply(ctx: Context) -> int:
    stamped = documents(stamped_objects(ctx, [ctx.args.filename], ctx.args.txn), "yaml")
    output = ["-o", "json"] if ctx.args.output == "json" else []
    sys.stdout.write(ctx.kubectl("apply", "-f", "-", *output, input=stamped))
    return EXIT_OK


def _cmd_stamp(ctx: Context) -> int:
    """stdin to stdout, stamped as apply stamps (a Helm post-renderer, a kustomize or kubectl step)."""
    objects = stamped_objects(ctx, ["-"], ctx.args.txn)
    # UTF-8 whatever the locale: what Helm, kustomize and kubectl read.
    sys.stdout.flush()
    sys.stdout.buffer.write(documents(objects, "json" if ctx.args.output == "json" else "yaml").encode())
    return EXIT_OK


def _cmd_delete(ctx: Context) -> int:
    patch = json.dumps({"metadata": {"annotations": {ctx.settings.txn_annotation: ctx.args.txn}}})
    ctx.kubectl("patch", ctx.args.target, "--type", "merge", "-p", patch)
    sys.stdout.write(ctx.kubectl("delete", ctx.args.target))
    return EXIT_OK


def _cmd_edit(ctx: Context) -> int:
    original = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    wrapper = f"{sys.executable} -m lockcore.cli {EDIT_WRAPPER} {ctx.settings.txn_annotation} {ctx.args.txn}"
    # kubectl edit's -o is both the format edited and what it prints afterwards; YAML is its
    # default and leaves the output "configmap/x edited". -o json edits and prints JSON.
    edit_format = ["-o", "json"] if ctx.args.output == "json" else []
    ctx.kubectl("edit", ctx.args.target, *edit_format, capture=False,
                env={"KUBE_EDITOR": wrapper, _WRAPPED_EDITOR_ENV: original})
    return EXIT_OK


def edit_wrapper(argv: list[str]) -> int:
    """The KUBE_EDITOR kubectl runs: stamp the annotation, then the user's editor.

    The user sees the annotation in the editor. Saving nothing else restores
    the file kubectl wrote, so quitting without changes still cancels.
    """
    annotation, txn, path = argv
    editor = os.environ.get(_WRAPPED_EDITOR_ENV) or "vi"
    with open(path, encoding="utf-8", newline="") as fh:
        original = fh.read()
    try:
        stamped = stamp_edit_text(original, annotation, txn)
    except StampError as exc:
        print(f"kubectl lock edit: cannot add {annotation}={txn}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _write_text(path, stamped)
    code = subprocess.call(["sh", "-c", f'{editor} "$1"', "sh", path])
    with open(path, encoding="utf-8", newline="") as fh:
        unchanged = fh.read() == stamped
    if unchanged or code != 0:
        _write_text(path, original)
    return code


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


COMMANDS: dict[str, Callable[[Context], int]] = {
    "apply": _cmd_apply,
    "stamp": _cmd_stamp,
    "delete": _cmd_delete,
    "edit": _cmd_edit,
}
