"""Coverage-guided fuzzing (atheris/libFuzzer) of the admission app, run as its own process.

``python -m tests.unit.fuzz.atheris_admission -runs=N`` feeds N byte strings,
each split into a content-type selector, a lookup selector and a body, through
:class:`tests.unit.fuzz.harness.Harness` (the real Flask app, cross-checked
against the parser and ``decide``). A failed check raises, which libFuzzer
reports as a crash with the input. Seeds are valid reviews, so mutations
reach deep into the parser instead of stopping at the JSON decoder.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import webhook.decision
    import webhook.lease_writes
    import webhook.outcome
    import webhook.review  # noqa: F401 - instrumented for coverage feedback

from tests.support.admission import body  # noqa: E402
from tests.support.fuzzing import LOOKUPS, Harness

CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", None]
LOOKUP_NAMES = sorted(LOOKUPS)
HARNESS = Harness()
SEEDS = [
    body(),
    body(operation="CREATE", oldObject=None),
    body(operation="DELETE", object=None),
    body(subResource="scale", resource={"group": "apps", "resource": "deployments"}),
    body(name=None, object={"metadata": {"generateName": "x-"}}),
]


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    content_type = CONTENT_TYPES[data[0] % len(CONTENT_TYPES)]
    lookup = LOOKUP_NAMES[data[1] % len(LOOKUP_NAMES)]
    HARNESS.check(data[2:], content_type, lookup)


def main(argv: list[str]) -> None:
    import logging
    import tempfile
    from pathlib import Path

    logging.disable(logging.CRITICAL)  # 4xx warnings by the thousand are not the point here
    corpus = Path(tempfile.mkdtemp(prefix="leasegate-fuzz-corpus-"))
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(b"\x00\x00" + seed)
    atheris.Setup([*argv, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
