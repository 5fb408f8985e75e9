"""Checks that the node's network has no way out, used with and without pods running."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tools.node.cluster import BRIDGE, BRIDGE_IP, POD_CIDR, SERVICE_CIDR, LocalNode


def ip_json(prefix: list[str], *args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` run under ``prefix`` (an nsenter into some network namespace, or nothing for the host)."""
    out = subprocess.run([*prefix, "ip", "-j", *args], capture_output=True, text=True, check=True).stdout
    data: list[dict[str, Any]] = json.loads(out or "[]")
    return data


def assert_node_has_no_way_out(node: LocalNode) -> int:
    """Loopback, the bridge and pod veths on it; no default route; only our addresses. Returns the veth count."""
    links = ip_json(node.nsenter(), "link", "show")
    assert {"lo", BRIDGE} <= {link["ifname"] for link in links}
    veths = [link for link in links if link["ifname"] not in ("lo", BRIDGE)]
    for link in veths:
        # A pod's veth: enslaved to the bridge, its peer in the pod's own namespace.
        assert link["ifname"].startswith("veth") and link.get("master") == BRIDGE and "link_netnsid" in link, link
    routes = ip_json(node.nsenter(), "route", "show")
    assert {r["dst"] for r in routes} <= {POD_CIDR, SERVICE_CIDR}, routes
    addresses = {a["local"] for link in ip_json(node.nsenter(), "addr", "show") for a in link["addr_info"]}
    assert {a for a in addresses if not a.startswith("fe80:")} <= {"127.0.0.1", "::1", BRIDGE_IP}, addresses
    return len(veths)


def assert_pod_has_no_way_out(pid: int) -> None:
    """A pod's namespace (entered through one of its processes): routes to the pod and Service ranges only."""
    routes = ip_json(["nsenter", f"--net=/proc/{pid}/ns/net"], "route", "show")
    assert {r["dst"] for r in routes} == {POD_CIDR, SERVICE_CIDR}, routes


def assert_host_untouched() -> None:
    """Nothing of the node appears in the host's own network namespace."""
    host_links = {link["ifname"] for link in ip_json([], "link", "show")}
    assert BRIDGE not in host_links and not [n for n in host_links if n.startswith("veth")], host_links
    ours = [r for r in ip_json([], "route", "show") if r.get("dst", "").startswith(("10.88.", "10.0.0."))]
    assert not ours, ours
