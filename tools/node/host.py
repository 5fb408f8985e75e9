"""What a node changes on the host, made and undone by PID, path and name, never by pattern.

The kubelet and containerd touch global state: kernel sysctls, cgroup
hierarchies, mounts (pod volumes, container root filesystems, network
namespace files) and processes they leave to be reaped by init (containerd's
shims). Each helper here records what existed before, so that teardown
removes exactly what the node made and restores what it changed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

NETNS_DIR = Path("/run/netns")
# The kubelet links every container's log here (a fixed path, pkg/kubelet/kuberuntime).
CONTAINER_LOG_LINKS = Path("/var/log/containers")
# containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its state directory.
SHIM_SOCKETS = Path("/run/containerd/s")
# Fixed host directories the daemons create if missing: removed again if they made them.
FIXED_DIRS = (CONTAINER_LOG_LINKS, SHIM_SOCKETS.parent, NETNS_DIR)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# What the kubelet sets at start (pkg/kubelet/cm setupKernelTunables) and kube-proxy's
# conntrack table size: global, so saved before the node starts and written back after.
GLOBAL_SYSCTLS = (
    "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/netfilter/nf_conntrack_max",
)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a host tool (ip, mount, ctr), raising with its output on failure."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


# -- sysctls -------------------------------------------------------------------------------


def read_sysctls(names: Iterable[str] = GLOBAL_SYSCTLS) -> dict[str, str]:
    """Current values of the sysctls that exist on this kernel."""
    values: dict[str, str] = {}
    for name in names:
        try:
            values[name] = (Path("/proc/sys") / name).read_text().strip()
        except OSError:
            continue
    return values


def restore_sysctls(saved: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Write back every saved value that changed; returns name -> (found, restored)."""
    changed: dict[str, tuple[str, str]] = {}
    for name, value in saved.items():
        current = read_sysctls([name]).get(name)
        if current is not None and current != value:
            (Path("/proc/sys") / name).write_text(value)
            changed[name] = (current, value)
    return changed


# -- network namespaces --------------------------------------------------------------------


def netns_names() -> set[str]:
    """Names ``ip netns list`` shows (files in /run/netns)."""
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


def is_mountpoint(path: Path) -> bool:
    return any(m == str(path) for m in mountpoints())


def create_bridge_netns(name: str, bridge: str, address: str, routes: Iterable[str]) -> None:
    """A namespace with loopback and one bridge (no uplink, no default route, no NAT).

    ``routes`` are on-link routes via the bridge (the Service range), so that
    kube-proxy's DNAT of a ClusterIP has a route to rewrite; an address nobody
    answers for is simply unreachable on a bridge with no way out.
    """
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    run("ip", "-n", name, "link", "add", bridge, "type", "bridge")
    run("ip", "-n", name, "addr", "add", address, "dev", bridge)
    run("ip", "-n", name, "link", "set", bridge, "up")
    for cidr in routes:
        run("ip", "-n", name, "route", "add", cidr, "dev", bridge)


def delete_netns(name: str) -> None:
    if name in netns_names():
        run("ip", "netns", "delete", name, check=False)


# -- mounts --------------------------------------------------------------------------------


def mountpoints() -> list[str]:
    """Mount points of this mount namespace, in mount order (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(field.encode().decode("unicode_escape"))
    return points


def unmount_under(root: Path) -> list[str]:
    """Unmount everything at or below ``root``, newest first (lazily if still busy)."""
    prefix = str(root.resolve())
    done = []
    for point in reversed(mountpoints()):
        if point == prefix or point.startswith(prefix + "/"):
            if run("umount", point, check=False).returncode != 0:
                run("umount", "-l", point, check=False)
            done.append(point)
    return done


# -- processes -----------------------------------------------------------------------------


def pids_with_cmdline(fragment: str) -> list[int]:
    """PIDs whose command line contains ``fragment`` (e.g. our containerd socket path)."""
    found = []
    needle = fragment.encode()
    mine = _ancestors()  # this process and whoever started it name the path too
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def kill_pids(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGTERM the given PIDs, SIGKILL those still alive after ``grace`` seconds."""
    alive = set(pids)
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _exists(pid)}
        time.sleep(0.1)
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- cgroups (v1 here, one directory per hierarchy; v2 has one) ----------------------------


def cgroup_hierarchies() -> list[Path]:
    """Mounted cgroup hierarchies: each v1 controller directory, or the v2 root."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()
                  and (p / "cgroup.procs").exists())


def create_cgroup(name: str) -> None:
    """``/<name>`` in every hierarchy: the kubelet's cgroupRoot, which must exist before it starts."""
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        # A new cpuset starts with no CPUs and no memory nodes; children copy from it.
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (path / knob).exists():
                (path / knob).write_text((hierarchy / knob).read_text())


def cgroup_pids(name: str) -> set[int]:
    """Every process in ``/<name>`` or below, in any hierarchy."""
    pids: set[int] = set()
    for directory in cgroup_dirs(name):
        try:
            pids |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        except OSError:
            continue
    return pids


def remove_cgroup(name: str) -> list[Path]:
    """rmdir ``/<name>`` and everything below it, deepest first; returns what is left."""
    left = []
    for directory in sorted(cgroup_dirs(name), key=lambda p: len(p.parts), reverse=True):
        try:
            directory.rmdir()
        except OSError:
            left.append(directory)
    return left


def cgroup_dirs(name: str) -> Iterator[Path]:
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name
        if top.is_dir():
            yield top
            yield from (p for p in top.rglob("*") if p.is_dir())


def remove_empty_tree(top: Path) -> bool:
    """rmdir ``top`` and its subdirectories if nothing but empty directories is left; True if gone."""
    if not top.is_dir():
        return True
    for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            directory.rmdir()
        except OSError:
            return False
    try:
        top.rmdir()
    except OSError:
        return False
    return True
