"""tools/node's pure parts: the apt sources it builds the rootfs from, and the daemons' configs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from tools.node.configs import Layout, cni_conflist, containerd_toml, kube_proxy_config, kubelet_config
from tools.node.image import apt_sources

DEB822 = """\
Types: deb deb-src
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# a disabled one
Types: deb
URIs: http://other.invalid/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://src.invalid/debian
Suites: bookworm
Components: main
"""


def test_apt_sources_reads_deb822_and_one_line_files(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list").write_text("# comment\ndeb http://one.invalid/debian-security bookworm-security main\n"
                                           "deb-src http://one.invalid/debian bookworm main\n")
    assert apt_sources(tmp_path) == [
        "deb http://one.invalid/debian-security bookworm-security main",
        "deb http://mirror.invalid/debian bookworm main contrib",
        "deb http://mirror.invalid/debian bookworm-updates main contrib",
    ]


def test_apt_sources_of_a_machine_without_any_is_empty(tmp_path: Path) -> None:
    assert apt_sources(tmp_path) == []


LAYOUT = Layout(workdir=Path("/w/node"), node_name="n1", bridge="lg0", bridge_ip="10.88.0.1",
                pod_cidr="10.88.0.0/24", service_cidr="10.0.0.0/24", cgroup_root="lg-x",
                pause_image="localhost/pause:1")


def test_containerd_config_keeps_every_path_in_the_node_directory_and_restricts_oom_score_adj() -> None:
    config = tomllib.loads(containerd_toml(LAYOUT))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    # Without CAP_SYS_RESOURCE every sandbox would fail at oom_score_adj.
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "localhost/pause:1"
    paths = [config["root"], config["state"], config["grpc"]["address"], cri["cni"]["conf_dir"],
             cri["containerd"]["runtimes"]["runc"]["options"]["Root"],
             config["plugins"]["io.containerd.internal.v1.opt"]["path"]]
    assert all(p.startswith("/w/node/") for p in paths), paths


def test_cni_gives_pods_no_default_route() -> None:
    (plugin,) = json.loads(cni_conflist(LAYOUT))["plugins"]
    assert plugin["bridge"] == "lg0" and plugin["ipMasq"] is False
    assert plugin["ipam"]["routes"] == [{"dst": "10.0.0.0/24"}]


def test_kubelet_and_kube_proxy_leave_global_settings_alone() -> None:
    kubelet = json.loads(kubelet_config(LAYOUT, Path("/ca.crt"), port=1, healthz_port=2))
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupRoot"] == "/lg-x"
    assert kubelet["readOnlyPort"] == 0 and kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["podLogsDir"].startswith("/w/node/")
    proxy = json.loads(kube_proxy_config(LAYOUT, Path("/kc"), 3, 4))
    # 0 = leave the kernel's conntrack table size and timeouts (nf_conntrack_max is global).
    assert all(proxy["conntrack"][k] in (0, "0s") for k in proxy["conntrack"])
