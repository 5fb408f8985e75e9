"""lockcore.released: what release says it did, in text and JSON."""

from __future__ import annotations

import pytest

from lockcore.naming import LeaseRef
from lockcore.released import Released

REF = LeaseRef("shop", "lg.configmap.settings")


@pytest.mark.parametrize(("outcome", "text", "held_by"), [
    (Released(REF, "t42", released=True), "released", None),
    (Released(REF, "t42", released=False, holder="t7"), "not held by t42 (held by t7)", "t7"),
    (Released(REF, "t42", released=False), "not held by t42 (no lock)", None),
])
def test_outcomes(outcome: Released, text: str, held_by: str | None) -> None:
    assert outcome.describe() == text
    assert outcome.as_json() == {"lease": {"namespace": "shop", "name": "lg.configmap.settings"},
                                 "released": outcome.released, "heldBy": held_by, "outcome": text}
