"""A real single-node Kubernetes cluster inside one network namespace, for tests and the Helm demo.

:class:`LocalNode` composes tools.localcluster's control plane (same
certificates, kubeconfigs and flags, through its hooks) with a node:

* a network namespace holding only loopback and the pod bridge (no uplink, no
  default route, no NAT); every daemon is entered with ``nsenter --net=...``
  (``ip netns exec`` would remount /sys and hide the cgroup mounts the kubelet
  needs);
* etcd, kube-apiserver (listening inside the namespace, advertised on the
  bridge, so pods reach it through the ``kubernetes`` Service),
  kube-controller-manager, kube-scheduler, kube-proxy (iptables), containerd +
  runc with the bridge CNI plugin, and the kubelet, all of one release;
* the webhook image built from the Dockerfile and the pause image, imported
  into containerd (tools/node/image.py): pods run with ``imagePullPolicy: Never``;
* a loopback forwarder (tools/node/forward.py) so that tests, kubectl and helm
  on the host reach the API server at ``https://127.0.0.1:<port>``.

:meth:`LocalNode.stop` removes everything it made: processes by PID, mounts
under its directory, pod network namespaces, its own namespace, its cgroups,
and writes back the global sysctls the kubelet changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tools.localcluster import REPO_ROOT, LocalCluster, _terminate, _wait_until, binary, free_port
from tools.node import host
from tools.node.configs import Layout, cni_conflist, containerd_toml, kube_proxy_config, kubelet_config
from tools.node.image import PAUSE_IMAGE, BuiltImages, ensure_images

NODE_NAME = "leasegate-node"
BRIDGE = "lg0"
BRIDGE_IP = "10.88.0.1"
POD_CIDR = "10.88.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"  # tools/localcluster's --service-cluster-ip-range
NODE_USER = f"system:node:{NODE_NAME}"
T = TypeVar("T")
POD_NETNS_PREFIX = "cni-"  # containerd 1.6 names the pod namespaces it makes in /run/netns so
SYSTEM_USERS = {NODE_USER: ("system:nodes",), "system:kube-proxy": (), "system:kube-scheduler": ()}


@dataclass
class LocalNode:
    """The control plane plus one node, inside ``netns``. Use :func:`running` or start()/stop()."""

    workdir: Path
    netns: str = field(default_factory=lambda: f"leasegate-{uuid.uuid4().hex[:6]}")
    #: The node's own daemons by name, in start order (the control plane's are in cluster.processes).
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Seconds per start step (images, control plane, node Ready), for the report and the docs.
    timings: dict[str, float] = field(default_factory=dict)
    images: BuiltImages | None = None
    _cluster: LocalCluster | None = None
    _sysctls: dict[str, str] = field(default_factory=dict)
    _netns_before: set[str] = field(default_factory=set)
    _netns_dir_mounted: bool = True
    _fixed_dirs_made: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.layout = Layout(workdir=self.workdir / "node", node_name=NODE_NAME, bridge=BRIDGE,
                             bridge_ip=BRIDGE_IP, pod_cidr=POD_CIDR, service_cidr=SERVICE_CIDR,
                             cgroup_root=self.netns, pause_image=PAUSE_IMAGE)

    @property
    def cluster(self) -> LocalCluster:
        """The control plane: kubeconfigs, users, CA, as for tools.localcluster."""
        assert self._cluster is not None, "node not started"
        return self._cluster

    @property
    def netns_path(self) -> Path:
        return host.NETNS_DIR / self.netns

    def nsenter(self) -> list[str]:
        """The prefix that runs a program inside the node's network namespace (and nothing else)."""
        return ["nsenter", f"--net={self.netns_path}"]

    def start(self, timeout: float = 120.0) -> None:
        """Build/import images, start every daemon, wait until the node is Ready."""
        # What the host looks like before anything is made: stop() undoes only the difference.
        self._sysctls = host.read_sysctls()
        self._netns_before = host.netns_names()
        self._netns_dir_mounted = host.is_mountpoint(host.NETNS_DIR)
        self._fixed_dirs_made = [d for d in host.FIXED_DIRS if not d.exists()]
        self.images = self._step("images", ensure_images)
        self.layout.workdir.mkdir(parents=True, exist_ok=True)
        host.create_bridge_netns(self.netns, BRIDGE, f"{BRIDGE_IP}/24", [SERVICE_CIDR])
        self._step("control plane", lambda: self._start_control_plane(timeout))
        self._step("containerd", self._start_containerd)
        self._step("node ready", lambda: self._start_node(timeout))

    def _step(self, name: str, action: Callable[[], T]) -> T:
        begin = time.monotonic()
        result = action()
        self.timings[name] = round(time.monotonic() - begin, 1)
        return result

    # -- control plane ---------------------------------------------------------------------

    def _start_control_plane(self, timeout: float) -> None:
        cluster = LocalCluster(
            workdir=self.workdir / "control-plane", apiserver_port=free_port(), etcd_port=free_port(),
            controller_manager=True, extra_users=SYSTEM_USERS, command_prefix=self.nsenter(),
            extra_apiserver_ips=[BRIDGE_IP], extra_apiserver_args=self._apiserver_args())
        self._cluster = cluster
        # The forwarder first: LocalCluster's readiness checks dial 127.0.0.1 from the host.
        self._start_forwarder([cluster.apiserver_port, cluster.etcd_port])
        cluster.start(timeout)

    def _apiserver_args(self) -> list[str]:
        pki = self.workdir / "control-plane" / "pki"
        return [
            # Inside the namespace 0.0.0.0 is only loopback and the pod bridge.
            "--bind-address=0.0.0.0",
            f"--advertise-address={BRIDGE_IP}",
            # The normal reconciler: the kubernetes Service's endpoint is the bridge address.
            "--endpoint-reconciler-type=lease",
            # Webhook Services through their ClusterIP, i.e. through kube-proxy's rules.
            "--enable-aggregator-routing=false",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
        ]

    def _start_forwarder(self, ports: list[int]) -> None:
        ready = self.workdir / "forward.ready"
        ready.unlink(missing_ok=True)
        self._spawn("forward", [sys.executable, "-m", "tools.node.forward", f"--netns={self.netns_path}",
                                f"--ready={ready}", *map(str, ports)], in_netns=False)
        _wait_until(ready.exists, 10, "loopback forwarder", self.workdir / "forward.log", list(self.daemons.values()))

    # -- node ------------------------------------------------------------------------------

    def _start_containerd(self) -> None:
        layout = self.layout
        (layout.workdir / "cni").mkdir(exist_ok=True)
        (layout.workdir / "cni" / "10-leasegate.conflist").write_text(cni_conflist(layout))
        (layout.workdir / "containerd.toml").write_text(containerd_toml(layout))
        self._spawn("containerd", ["containerd", f"--config={layout.workdir / 'containerd.toml'}"])
        _wait_until(lambda: self._ctr("version", check=False).returncode == 0, 30, "containerd",
                    layout.workdir / "containerd.log", list(self.daemons.values()))
        assert self.images is not None
        for archive in (self.images.pause, self.images.webhook):
            self._ctr("images", "import", str(archive))

    def _start_node(self, timeout: float) -> None:
        cluster, layout = self.cluster, self.layout
        (layout.workdir / "resolv.conf").write_text("")  # pods get no name server: nothing to leak to
        host.create_cgroup(layout.cgroup_root)
        (layout.workdir / "kubelet.json").write_text(
            kubelet_config(layout, cluster.ca_file, port=free_port(), healthz_port=free_port()))
        (layout.workdir / "kube-proxy.json").write_text(
            kube_proxy_config(layout, cluster.kubeconfig_for("system:kube-proxy"), free_port(), free_port()))
        scheduler_kubeconfig = cluster.kubeconfig_for("system:kube-scheduler")
        self._spawn("kube-scheduler", [
            str(binary("kube-scheduler")), f"--kubeconfig={scheduler_kubeconfig}",
            f"--authentication-kubeconfig={scheduler_kubeconfig}",
            f"--authorization-kubeconfig={scheduler_kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--v=0"])
        self._spawn("kube-proxy", [str(binary("kube-proxy")), f"--config={layout.workdir / 'kube-proxy.json'}",
                                   "--v=0"])
        self._spawn("kubelet", [
            str(binary("kubelet")), f"--config={layout.workdir / 'kubelet.json'}",
            f"--kubeconfig={cluster.kubeconfig_for(NODE_USER)}", f"--root-dir={layout.kubelet_root}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={BRIDGE_IP}", "--v=0"])
        _wait_until(self.node_ready, timeout, "node Ready", layout.workdir / "kubelet.log", list(self.daemons.values()))

    def node_ready(self) -> bool:
        """Whether the node reports condition Ready=True."""
        result = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """kubectl as admin, from the host (through the forwarder)."""
        result = subprocess.run([str(binary("kubectl")), f"--kubeconfig={self.cluster.kubeconfig}", *args],
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return host.run("ctr", f"--address={self.layout.containerd_socket}", "--namespace=k8s.io", *args,
                        check=check)

    def _spawn(self, name: str, argv: list[str], in_netns: bool = True) -> None:
        log = open(self.workdir / f"{name}.log" if name == "forward" else self.layout.workdir / f"{name}.log",
                   "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([*self.nsenter(), *argv] if in_netns else argv, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=REPO_ROOT)
        log.close()
        self.daemons[name] = proc

    # -- teardown --------------------------------------------------------------------------

    def stop(self) -> dict[str, object]:
        """Stop and remove everything the node made; returns what had to be cleaned up."""
        report: dict[str, object] = {}
        if self._cluster is not None and "kubelet" in self.daemons:
            report["pods drained"] = self._drain()
        # Clients of the API server and of containerd first, then the control plane, then
        # containerd, and the forwarder last (the drain above needed it).
        for name in ("kubelet", "kube-proxy", "kube-scheduler"):
            self._stop_daemon(name)
        if self._cluster is not None:
            self._cluster.stop()
        for name in ("containerd", "forward"):
            self._stop_daemon(name)
        report.update(self._sweep())
        return report

    def _stop_daemon(self, name: str) -> None:
        proc = self.daemons.pop(name, None)
        if proc is not None:
            _terminate(proc.pid, proc)

    def _drain(self, timeout: float = 45.0) -> int:
        """Delete every pod through the API and let the kubelet stop them (volumes, sandboxes, netns).

        The controller manager goes first so that no ReplicaSet replaces them.
        """
        cluster = self.cluster
        for proc in [p for p in cluster.processes if "kube-controller-manager" in str(p.args)]:
            _terminate(proc.pid, proc)
            cluster.processes.remove(proc)
        self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=5", "--wait=false",
                     check=False)
        deadline = time.monotonic() + timeout
        left = -1
        while time.monotonic() < deadline:
            result = self.kubectl("get", "pods", "-A", "-o", "name", check=False)
            sandboxes = self._ctr("tasks", "list", "--quiet", check=False).stdout.split()
            left = len(result.stdout.split()) + len(sandboxes)
            if result.returncode == 0 and left == 0:
                break
            time.sleep(0.5)
        return left

    def _sweep(self) -> dict[str, object]:
        """What the daemons leave behind when stopped: shims, container processes, mounts, netns, cgroups."""
        socket = str(self.layout.containerd_socket)
        strays = set(host.pids_with_cmdline(socket)) | host.cgroup_pids(self.layout.cgroup_root)
        host.kill_pids(strays)
        unmounted = host.unmount_under(self.workdir)
        pod_netns = self._pod_netns()
        for name in pod_netns:
            host.delete_netns(name)
        host.delete_netns(self.netns)
        if not self._netns_dir_mounted and host.is_mountpoint(host.NETNS_DIR) and not host.netns_names():
            host.run("umount", str(host.NETNS_DIR), check=False)  # `ip netns add` made it a mount point
        self._remove_log_links()
        cgroups_left = host.remove_cgroup(self.layout.cgroup_root)
        sysctls = host.restore_sysctls(self._sysctls) if self._sysctls else {}
        return {"stray processes": sorted(strays), "unmounted": [m.removeprefix(str(self.workdir)) for m in unmounted],
                "pod netns removed": pod_netns, "cgroups left": [str(p) for p in cgroups_left],
                "sysctls restored": sysctls}


    def _pod_netns(self) -> list[str]:
        """Pod network namespaces our containerd made (``cni-*``, new since start); never anyone else's."""
        return sorted(n for n in host.netns_names() - self._netns_before if n.startswith(POD_NETNS_PREFIX))

    def leftovers(self) -> list[str]:
        """Anything of this node still on the host: what the tests' teardown and `run` check for."""
        found = [f"mount {m}" for m in host.mountpoints() if m.startswith(str(self.workdir))]
        found += [f"netns {n}" for n in [*self._pod_netns(), self.netns] if n in host.netns_names()]
        found += [f"process {p}" for p in host.pids_with_cmdline(str(self.workdir))]
        found += [f"cgroup {p}" for p in host.cgroup_dirs(self.layout.cgroup_root)]
        found += [f"directory {d}" for d in self._fixed_dirs_made if d.exists()]
        changed = {k: v for k, v in host.read_sysctls(self._sysctls).items() if self._sysctls.get(k) != v}
        return found + [f"sysctl {k}={v}" for k, v in changed.items()]

    def _remove_log_links(self) -> None:
        """The kubelet's /var/log/containers links into this node, and the fixed directories it made."""
        if host.CONTAINER_LOG_LINKS.is_dir():
            for link in host.CONTAINER_LOG_LINKS.iterdir():
                if link.is_symlink() and str(link.readlink()).startswith(str(self.workdir)):
                    link.unlink()
        for directory in self._fixed_dirs_made:
            host.remove_empty_tree(directory)
