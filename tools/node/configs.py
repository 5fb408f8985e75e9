"""Configuration files of the node's daemons: containerd (CRI), CNI, kubelet, kube-proxy.

Each function returns the text of one file; tools/node/cluster.py writes them.
The values that matter, and why:

* containerd's CRI ``restrict_oom_score_adj = true``: this machine lacks
  CAP_SYS_RESOURCE, so lowering a sandbox's oom_score_adj fails and every pod
  would fail to start; ``sandbox_image`` names the locally built pause image.
  Every path (root, state, sockets, runc's state) is inside the node's directory.
* CNI: one ``bridge`` (the namespace's pod bridge, made beforehand) with
  ``host-local`` IPAM; pods get routes to the pod range and the Service range
  only, no default route.
* kubelet: ``failCgroupV1: false`` (1.35 refuses cgroup v1 otherwise),
  cgroupfs driver under its own ``cgroupRoot``, x509 + webhook authn/authz
  (the API server's ``kubectl logs`` calls are authenticated), no read-only
  port, image GC and disk eviction effectively off (images cannot be pulled
  back: there is no registry), pod logs inside the node's directory.
* kube-proxy: iptables mode inside the namespace; conntrack sizes and timeouts
  0 = leave the kernel's (they are global or shared with the host otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Names, addresses and paths of one node."""

    workdir: Path
    node_name: str
    bridge: str
    bridge_ip: str
    pod_cidr: str
    service_cidr: str
    cgroup_root: str
    pause_image: str

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.workdir / "kubelet"


def containerd_toml(layout: Layout) -> str:
    base = layout.workdir / "containerd"
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    return f"""\
version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{layout.containerd_socket}"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / 'opt'}"

{cri}
  sandbox_image = "{layout.pause_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{cri[:-1]}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri[:-1]}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{base / 'runc'}"

{cri[:-1]}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{layout.workdir / 'cni'}"
  max_conf_num = 1
"""


def cni_conflist(layout: Layout) -> str:
    network = {
        "cniVersion": "0.4.0",
        "name": "leasegate-node",
        "plugins": [{
            "type": "bridge",
            "bridge": layout.bridge,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": layout.pod_cidr, "gateway": layout.bridge_ip}]],
                "routes": [{"dst": layout.service_cidr}],
                "dataDir": str(layout.workdir / "cni-ipam"),
            },
        }],
    }
    return json.dumps(network, indent=2)


def kubelet_config(layout: Layout, ca_file: Path, port: int, healthz_port: int) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{layout.cgroup_root}",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": layout.bridge_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca_file)}},
        "authorization": {"mode": "Webhook"},
        "failSwapOn": False,
        "resolvConf": str(layout.workdir / "resolv.conf"),
        "clusterDomain": "cluster.local",
        "podLogsDir": str(layout.workdir / "pod-logs"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
        "serializeImagePulls": False,
        "maxPods": 30,
    }
    return json.dumps(config, indent=2)


def kube_proxy_config(layout: Layout, kubeconfig: Path, healthz_port: int, metrics_port: int) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": layout.pod_cidr,
        "hostnameOverride": layout.node_name,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
                      "udpTimeout": "0s", "udpStreamTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "syncPeriod": "10s", "minSyncPeriod": "0s"},
        "nodePortAddresses": ["primary"],
    }
    return json.dumps(config, indent=2)
