"""A real, local Kubernetes control plane: etcd + kube-apiserver on loopback.

This is leasegate's envtest: the same upstream binaries a cluster runs (built
from the Go module proxy by ``make tools``, see tools/controlplane/), started
on free loopback ports in a scratch directory, with

* client-certificate authentication for an admin (``system:masters``) and two
  ordinary users, ``alice`` and ``bob`` (group ``developers``), and a
  service-account signing key pair, all generated with ``cryptography``;
* ``--authorization-mode=Node,RBAC`` and the admission plugins a real cluster
  has, including ValidatingAdmissionWebhook;
* an audit log (``audit.log``) at Metadata level, so tests can read back the
  audit annotations admission webhooks add.

kube-controller-manager is optional (``controller_manager=True``): most tests
do not need it (they isolate by namespace and never wait for a namespace to
finish terminating); tests of the webhook's deadlock exemptions do, because
only the real namespace controller and garbage collector show that a locked
object cannot wedge a namespace deletion.

Command line::

    python -m tools.localcluster up [--dir DIR]     # start in the background
    python -m tools.localcluster down [--dir DIR]   # stop it
    python -m tools.localcluster run -- CMD ...     # start, run CMD with KUBECONFIG, stop
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from webhook.certs import CertificateAuthority, pem

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("LEASEGATE_CACHE", REPO_ROOT / ".cache"))
BIN_DIR = CACHE_DIR / "bin"
DEFAULT_DIR = CACHE_DIR / "cluster"

# name -> groups. alice and bob are ordinary users with no rights until a test grants some.
USERS: dict[str, tuple[str, ...]] = {
    "admin": ("system:masters",),
    "alice": ("developers",),
    "bob": ("developers",),
    # The identity the bootstrap RBAC policy grants the controller manager.
    "system:kube-controller-manager": (),
}

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    verbs: ["get", "list", "watch"]
  - level: None
    resources: [{group: "coordination.k8s.io", resources: ["leases"]}]
    users: ["system:apiserver"]
  - level: Metadata
"""


def binary(name: str) -> Path:
    """Path of a cached tool (kube-apiserver, etcd, kubectl, helm)."""
    path = BIN_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make tools` first")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalCluster:
    """A running etcd + kube-apiserver pair. Use :func:`running` or start()/stop()."""

    workdir: Path
    apiserver_port: int = 0
    etcd_port: int = 0
    controller_manager: bool = False
    #: Serve /debug/pprof (admins only), for the benchmark's API server profile.
    profiling: bool = False
    #: Identities (name -> groups) besides USERS, e.g. a kubelet's ``system:node:<name>``.
    extra_users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Prepended to every daemon's argv: tools/node enters its network namespace with nsenter.
    command_prefix: list[str] = field(default_factory=list)
    #: Appended to kube-apiserver's flags (a repeated flag's last value wins).
    extra_apiserver_args: list[str] = field(default_factory=list)
    #: More IP addresses for the API server's serving certificate (a node's bridge address).
    extra_apiserver_ips: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Kubeconfig file references are resolved relative to the kubeconfig.
        self.workdir = self.workdir.resolve()

    @property
    def users(self) -> dict[str, tuple[str, ...]]:
        """Every identity with a client certificate and a kubeconfig."""
        return {**USERS, **self.extra_users}

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig; it also has contexts ``alice`` and ``bob``."""
        return self.workdir / "kubeconfig"

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig whose current context is ``user``."""
        return self.workdir / f"kubeconfig-{user}"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.apiserver_port = self.apiserver_port or free_port()
        self.etcd_port = self.etcd_port or free_port()
        pki = self._write_pki()
        self._start_etcd()
        self._start_apiserver(pki)
        self._write_kubeconfigs(pki)
        self._wait_ready(timeout)
        if self.controller_manager:
            self._start_controller_manager(pki)
        (self.workdir / "state.json").write_text(
            json.dumps(
                {
                    "pids": [p.pid for p in self.processes],
                    "server": self.server,
                    "kubeconfig": str(self.kubeconfig),
                }
            )
        )

    def stop(self) -> None:
        for proc in reversed(self.processes):
            _terminate(proc.pid, proc)
        self.processes.clear()
        (self.workdir / "state.json").unlink(missing_ok=True)

    def stop_apiserver(self) -> None:
        """Stop only the kube-apiserver (etcd keeps its data): an API outage for fault tests."""
        for proc in [p for p in self.processes if _program(p) == "kube-apiserver"]:
            _terminate(proc.pid, proc)
            self.processes.remove(proc)

    def start_apiserver(self, timeout: float = 90.0) -> None:
        """Start the kube-apiserver again on the same port after :meth:`stop_apiserver`."""
        self._start_apiserver(self.workdir / "pki")
        self._wait_ready(timeout)

    def version(self) -> dict[str, str]:
        """The API server's /version (gitVersion etc.)."""
        with self._open("/version") as resp:
            data: dict[str, str] = json.load(resp)
            return data

    # -- internals -----------------------------------------------------------

    def _write_pki(self) -> Path:
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(exist_ok=True)
        ca = CertificateAuthority.create("leasegate-local-ca", days=30)
        (pki_dir / "ca.crt").write_bytes(pem(ca.cert))
        (pki_dir / "ca.key").write_bytes(pem(ca.key))
        cert, key = ca.issue("kube-apiserver", dns_names=["localhost", "kubernetes.default.svc"],
                             ips=["127.0.0.1", "10.0.0.1", *self.extra_apiserver_ips], days=30)
        (pki_dir / "apiserver.crt").write_bytes(pem(cert))
        (pki_dir / "apiserver.key").write_bytes(pem(key))
        for user, groups in self.users.items():
            cert, key = ca.issue(user, organizations=groups, client=True, days=30)
            (pki_dir / f"{user}.crt").write_bytes(pem(cert))
            (pki_dir / f"{user}.key").write_bytes(pem(key))
        # Service-account tokens are RS256-signed, as kube-apiserver expects by default.
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki_dir / "sa.key").write_bytes(
            sa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))
        (pki_dir / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        return pki_dir

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [*self.command_prefix, *argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.processes.append(proc)

    def _start_etcd(self) -> None:
        peer_port = free_port()
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                str(binary("etcd")),
                "--name=leasegate-local",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=leasegate-local=http://127.0.0.1:{peer_port}",
                # Tests want speed, not durability: etcd's fsync on every write is most of its latency.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        _wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), 30, "etcd", self.workdir / "etcd.log"
        )

    def _start_apiserver(self, pki: Path) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
                "DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,"
                "ValidatingAdmissionPolicy",
                f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",
                "--allow-privileged=true",
                f"--profiling={str(self.profiling).lower()}",
                "--endpoint-reconciler-type=none",
                # Resolve webhook/aggregated Services through their EndpointSlices, not
                # their ClusterIP: with no kube-proxy a ClusterIP (10.0.0.x) would be dialled
                # off this machine; via endpoints an unready Service fails fast and locally.
                "--enable-aggregator-routing=true",
                "--v=0",
                *self.extra_apiserver_args,
            ],
        )

    def _start_controller_manager(self, pki: Path) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                str(binary("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig_for('system:kube-controller-manager')}",
                f"--authentication-kubeconfig={self.kubeconfig_for('system:kube-controller-manager')}",
                f"--authorization-kubeconfig={self.kubeconfig_for('system:kube-controller-manager')}",
                # Each controller acts as its own service account, as in kubeadm clusters:
                # the webhook's default exemptions name those accounts.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--controllers=*",
                "--v=0",
            ],
        )

    def _write_kubeconfigs(self, pki: Path) -> None:
        def config(current: str) -> dict[str, object]:
            return {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": self.server, "certificate-authority": str(pki / "ca.crt")},
                    }
                ],
                "users": [
                    {
                        "name": user,
                        "user": {
                            "client-certificate": str(pki / f"{user}.crt"),
                            "client-key": str(pki / f"{user}.key"),
                        },
                    }
                    for user in self.users
                ],
                "contexts": [
                    {"name": user, "context": {"cluster": "local", "user": user}} for user in self.users
                ],
                "current-context": current,
            }

        # JSON is valid YAML; kubectl, helm and the Python client all read it.
        self.kubeconfig.write_text(json.dumps(config("admin"), indent=2))
        for user in self.users:
            self.kubeconfig_for(user).write_text(json.dumps(config(user), indent=2))

    def _open(self, path: str, user: str = "admin") -> http.client.HTTPResponse:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        pki = self.workdir / "pki"
        ctx.load_cert_chain(str(pki / f"{user}.crt"), str(pki / f"{user}.key"))
        response: http.client.HTTPResponse = urllib.request.urlopen(self.server + path, context=ctx, timeout=5)
        return response

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            try:
                with self._open("/readyz") as resp:
                    return bool(resp.status == 200)
            except (OSError, urllib.error.URLError):
                return False

        _wait_until(ready, timeout, "kube-apiserver", self.workdir / "kube-apiserver.log", self.processes)


def _program(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    argv = [str(a) for a in args] if isinstance(args, list) else [str(args)]
    # Behind a command_prefix (nsenter --net=... PROGRAM): the first argument that is no option.
    if Path(argv[0]).name == "nsenter":
        argv = [a for a in argv[1:] if not a.startswith("-")] or argv
    return Path(argv[0]).name


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait_until(
    check: object, timeout: float, what: str, log: Path, processes: Sequence[subprocess.Popen[bytes]] = ()
) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for proc in processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(pid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait()


@contextmanager
def running(workdir: Path | None = None, *, controller_manager: bool = False,
            profiling: bool = False, extra_apiserver_args: Sequence[str] = ()) -> Iterator[LocalCluster]:
    """Start a cluster for the duration of a ``with`` block.

    ``extra_apiserver_args`` are appended to kube-apiserver's flags (e.g. ``--event-ttl=5s``).
    """
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="leasegate-cluster-")
        workdir = Path(tmp)
    cluster = LocalCluster(workdir=workdir, controller_manager=controller_manager, profiling=profiling,
                           extra_apiserver_args=list(extra_apiserver_args))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _down(workdir: Path) -> None:
    state_file = workdir / "state.json"
    if not state_file.exists():
        print(f"no cluster running in {workdir}")
        return
    for pid in reversed(json.loads(state_file.read_text())["pids"]):
        _terminate(pid)
    state_file.unlink()
    print("cluster stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localcluster", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start in the background and print how to use it")
    sub.add_parser("down", help="stop a cluster started with up")
    run = sub.add_parser("run", help="start, run a command with KUBECONFIG set, stop")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "down":
        _down(args.dir)
        return 0
    if args.command == "up":
        _down(args.dir)
        cluster = LocalCluster(workdir=args.dir)
        cluster.start()
        print(f"kube-apiserver {cluster.version()['gitVersion']} ready at {cluster.server}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"stop with: python -m tools.localcluster down --dir {args.dir}")
        return 0
    cmd = [c for c in args.cmd if c != "--"]
    if not cmd:
        parser.error("run needs a command")
    with running(args.dir) as cluster:
        print(f"kube-apiserver {cluster.version()['gitVersion']} ready at {cluster.server}", flush=True)
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), PATH=f"{BIN_DIR}:{os.environ['PATH']}")
        return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
