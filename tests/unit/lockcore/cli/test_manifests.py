"""lockcore.cli.manifests.documents: the stamped objects as a stream every reader reads back alike."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from lockcore.cli.manifests import documents
from lockcore.pipeline import json_stream

# What a Kubernetes object can hold; strings include those a YAML dump would leave ambiguous.
scalars = (st.none() | st.booleans() | st.integers() | st.text() | st.sampled_from(["1e3", "no", "0755", "~", "- x"])
           | st.text(alphabet=st.sampled_from("a\x85\x7f\u2028\u2029\ufeff\U0001f600\t\n\"\\")))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
objects = st.lists(st.dictionaries(st.text(max_size=8), values, max_size=4), max_size=4)


@given(objects)
def test_yaml_and_json_streams_read_back_as_the_objects(objs: list[dict[str, Any]]) -> None:
    assert list(yaml.safe_load_all(documents(objs, "yaml"))) == objs
    assert json_stream(documents(objs, "json")) == objs


def test_each_yaml_document_starts_with_a_separator() -> None:
    text = documents([{"kind": "ConfigMap"}, {"kind": "Secret"}], "yaml")
    assert text == '---\n{"kind": "ConfigMap"}\n---\n{"kind": "Secret"}\n'
    assert documents([], "yaml") == documents([], "json") == ""
    assert json.loads(documents([{"a": [1]}], "json")) == {"a": [1]}
