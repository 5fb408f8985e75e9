"""The webhook image, built from the project's Dockerfile with no registry and no Docker engine.

* **Base**: a minimal Debian rootfs made by ``mmdebstrap`` (Debian's Python 3.11,
  the same minor version as the Dockerfile's ``python:3.11-slim``) from the
  Debian mirror this machine's apt sources name (read at run time), committed
  into a private buildah store as ``localhost/leasegate-base:bookworm``.
* **Image**: ``buildah bud --isolation chroot`` of the unmodified Dockerfile,
  the base passed as its ``PYTHON_IMAGE`` build argument; the host's CA bundle
  is mounted read-only so pip inside the build trusts what this machine trusts.
* **pause**: the sandbox image, one static binary built from Kubernetes' own
  ``pause.c`` (Makefile ``$(BIN)/pause``), written here as a docker-archive.

Results are docker-archive tarballs under ``.cache/node/images`` keyed by a
hash of their inputs, so later sessions only import them into containerd.
buildah uses the ``vfs`` driver in its own store: no mount outlives a build.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.localcluster import BIN_DIR, CACHE_DIR, REPO_ROOT

IMAGE_DIR = CACHE_DIR / "node" / "images"
BUILDAH_ROOT = CACHE_DIR / "node" / "buildah"
WEBHOOK_IMAGE = "localhost/leasegate-webhook:0.1.0"
BASE_IMAGE = "localhost/leasegate-base:bookworm"
PAUSE_IMAGE = "localhost/leasegate-pause:3.10"
DEBIAN_SUITE = "bookworm"
# What the Dockerfile's builder and runtime stages run: python/pip/venv, groupadd/useradd.
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates", "passwd")
# The Dockerfile copies only these into its build context (.dockerignore).
CONTEXT_PATHS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "lockcore", "webhook")
# python:3.11-slim's PATH: the Dockerfile's RUN lines find python, groupadd and useradd on it.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class BuiltImages:
    """docker-archive tarballs ready for ``ctr images import``, and how long each took."""

    webhook: Path
    pause: Path
    seconds: dict[str, float]


def apt_sources(root: Path = Path("/etc/apt")) -> list[str]:
    """One-line ``deb URI SUITE COMPONENT...`` entries from this machine's apt sources.

    Both formats are read (deb822 ``*.sources`` and one-line ``*.list``), so the
    rootfs comes from whatever mirror the machine is configured for, never a
    name written in this repository.
    """
    lines: list[str] = []
    for path in sorted([root / "sources.list", *root.glob("sources.list.d/*.list")]):
        if path.is_file():
            lines += [ln.strip() for ln in path.read_text().splitlines() if ln.strip().startswith("deb ")]
    for path in sorted(root.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = _deb822(stanza)
            if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes") == "no":
                continue
            for uri in fields.get("URIs", "").split():
                for suite in fields.get("Suites", "").split():
                    lines.append(f"deb {uri} {suite} {fields.get('Components', 'main')}")
    return lines


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def tree_hash(paths: Iterable[Path], extra: Sequence[str] = ()) -> str:
    """A content hash of files and directories (names and bytes), for cache keys."""
    digest = hashlib.sha256("\0".join(extra).encode())
    for top in paths:
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(str(file.relative_to(REPO_ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def build_rootfs(out: Path) -> None:
    """A minimal Debian rootfs tarball with Python 3.11 (mmdebstrap, ~45 s)."""
    suites = [s for s in apt_sources() if s.split()[2].startswith(DEBIAN_SUITE)]
    if not suites:
        raise RuntimeError(f"no apt source for Debian {DEBIAN_SUITE} in /etc/apt")
    tmp = out.with_suffix(".partial")
    _run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
          # Documentation and locales are dead weight in an image.
          "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
          "--dpkgopt=path-exclude=/usr/share/locale/*", "--format=tar",
          DEBIAN_SUITE, str(tmp), *suites])
    tmp.rename(out)


def buildah(*args: str, capture: bool = False) -> str:
    """Run buildah against the project's private store (vfs: plain directories, no mounts)."""
    argv = ["buildah", f"--root={BUILDAH_ROOT / 'root'}", f"--runroot={BUILDAH_ROOT / 'run'}",
            "--storage-driver=vfs", *args]
    return _run(argv, capture=capture)


def import_base(rootfs: Path) -> None:
    """Commit the rootfs tarball as the base image (``buildah add`` unpacks it)."""
    container = buildah("from", "scratch", capture=True).strip()
    try:
        buildah("add", "--quiet", container, str(rootfs), "/")
        buildah("config", "--env", f"PATH={BASE_PATH}", "--cmd", "python3", container)
        buildah("commit", "--quiet", "--rm", container, BASE_IMAGE)
    except BaseException:
        buildah("rm", container)
        raise


def build_webhook(out: Path) -> None:
    """``buildah bud`` of the Dockerfile on the local base, saved as a docker-archive."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    mounts = [f"--volume={HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"] if HOST_CA_BUNDLE.exists() else []
    buildah("bud", "--quiet", "--isolation=chroot", "--pull=never", "--layers=false",
            f"--build-arg=PYTHON_IMAGE={BASE_IMAGE}", f"--build-arg=CREATED={created}",
            f"--build-arg=REVISION={_git_revision()}", *mounts,
            f"--tag={WEBHOOK_IMAGE}", f"--file={REPO_ROOT / 'Dockerfile'}", str(REPO_ROOT))
    tmp = out.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    buildah("push", "--quiet", WEBHOOK_IMAGE, f"docker-archive:{tmp}:{WEBHOOK_IMAGE}")
    # Drop intermediate images of earlier sources: the store holds only the latest build.
    buildah("rmi", "--prune")
    tmp.rename(out)


def write_pause_archive(out: Path, pause_binary: Path = BIN_DIR / "pause") -> None:
    """A docker-archive holding only /pause, run as 65535 like the upstream pause image."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(pause_binary), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        with pause_binary.open("rb") as fh:
            tar.addfile(info, fh)
    layer_bytes = layer.getvalue()
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]},
    }
    config_bytes = json.dumps(config).encode()
    manifest = [{"Config": "config.json", "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, mode="w") as tar:
        for name, data in (("layer.tar", layer_bytes), ("config.json", config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(out)


def ensure_images() -> BuiltImages:
    """Build whatever is missing or stale; return the archives and the seconds each step took."""
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    rootfs = IMAGE_DIR / f"rootfs-{DEBIAN_SUITE}-{tree_hash([], BASE_PACKAGES)}.tar"
    # The marker names the base's config too: a changed config is committed again.
    base_marker = rootfs.with_suffix(f".{tree_hash([], [BASE_PATH])}.imported")
    if not rootfs.exists():
        seconds["rootfs"] = _timed(lambda: build_rootfs(rootfs))
    if not base_marker.exists() or not _buildah_has(BASE_IMAGE):
        seconds["base"] = _timed(lambda: import_base(rootfs))
        base_marker.touch()
    key = tree_hash([REPO_ROOT / p for p in CONTEXT_PATHS], [rootfs.name])
    webhook = IMAGE_DIR / f"webhook-{key}.tar"
    if not webhook.exists():
        for old in IMAGE_DIR.glob("webhook-*.tar"):
            old.unlink()
        seconds["webhook"] = _timed(lambda: build_webhook(webhook))
    pause = IMAGE_DIR / f"pause-{tree_hash([BIN_DIR / 'pause'])}.tar"
    if not pause.exists():
        seconds["pause"] = _timed(lambda: write_pause_archive(pause))
    return BuiltImages(webhook=webhook, pause=pause, seconds=seconds)


def _buildah_has(image: str) -> bool:
    result = subprocess.run(["buildah", f"--root={BUILDAH_ROOT / 'root'}", f"--runroot={BUILDAH_ROOT / 'run'}",
                             "--storage-driver=vfs", "inspect", "--type=image", image],
                            capture_output=True, check=False)
    return result.returncode == 0


def _git_revision() -> str:
    result = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip() or "unknown"


def _timed(step: object) -> float:
    assert callable(step)
    start = time.monotonic()
    step()
    return round(time.monotonic() - start, 1)


def _run(argv: list[str], capture: bool = False) -> str:
    env = dict(os.environ, BUILDAH_ISOLATION="chroot")
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} {' '.join(argv[1:4])} ... failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout if capture else ""


if __name__ == "__main__":
    built = ensure_images()
    print(json.dumps({"webhook": str(built.webhook), "pause": str(built.pause), "seconds": built.seconds}))
