"""webhook/cel.py: literals that cannot break out of their quotes, total expressions (has() before reading)."""

from __future__ import annotations

import pytest

from webhook.cel import annotation, has_label, label, literal, records, string_list


@pytest.mark.parametrize("text", ["it's", "back\\slash"])
def test_a_literal_refuses_what_would_need_escaping(text: str) -> None:
    with pytest.raises(ValueError, match="cannot be a plain CEL literal"):
        literal(text)


def test_string_lists_escape_as_json() -> None:
    assert string_list(['a"b', "c"]) == '["a\\"b", "c"]'
    assert string_list([]) == "[]"


def test_every_read_is_guarded() -> None:
    for expression, read in [(annotation("object", "k"), "object.metadata.annotations['k']"),
                             (label("oldObject", "k"), "oldObject.metadata.labels['k']")]:
        guard, _, rest = expression.partition(" ? ")
        assert guard.startswith("(has(") and "'k' in" in guard and rest.startswith(read)
    assert has_label("object", "k") == "(has(object.metadata.labels) && 'k' in object.metadata.labels)"
    assert "!= ''" in records("object", "p")  # an anonymous requester records nobody
