"""Kubernetes wire forms lockcore writes: REST paths, times, JSON-pointer keys (lockcore.kube)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lockcore.kube import escape_json_pointer, format_micro_time, format_time, lease_path, object_path
from lockcore.lease import parse_time


@pytest.mark.parametrize(("args", "path"), [
    (("apps", "v1", "deployments", "shop", "web"), "/apis/apps/v1/namespaces/shop/deployments/web"),
    (("", "v1", "configmaps", "shop", "cfg"), "/api/v1/namespaces/shop/configmaps/cfg"),
    (("rbac.authorization.k8s.io", "v1", "clusterroles", "", "system:x"),
     "/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Ax"),
])
def test_object_paths(args: tuple[str, str, str, str, str], path: str) -> None:
    assert object_path(*args) == path


def test_lease_paths() -> None:
    assert lease_path("shop") == "/apis/coordination.k8s.io/v1/namespaces/shop/leases"
    assert lease_path("shop", "lg.x") == "/apis/coordination.k8s.io/v1/namespaces/shop/leases/lg.x"


def test_times_are_utc_and_micro_time_round_trips() -> None:
    moment = datetime(2026, 3, 4, 6, 6, 7, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(moment) == "2026-03-04T05:06:07Z"
    assert format_micro_time(moment) == "2026-03-04T05:06:07.123456Z"
    assert parse_time(format_micro_time(moment)) == moment


@pytest.mark.parametrize(("key", "segment"), [
    ("leasegate.io/locked", "leasegate.io~1locked"), ("a~b/c", "a~0b~1c"), ("plain", "plain")])
def test_json_pointer_segments(key: str, segment: str) -> None:
    assert escape_json_pointer(key) == segment
