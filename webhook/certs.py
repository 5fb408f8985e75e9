"""Serving certificates: generate a CA + serving cert, and reload rotated files.

* :func:`generate` writes ``ca.crt``, ``tls.crt`` and ``tls.key`` into a
  directory, for a Service's DNS names plus ``localhost``/``127.0.0.1``.
* :class:`ReloadingContext` hands gunicorn an ``ssl.SSLContext`` (TLS 1.2 at
  least) and builds a new one when the certificate or key file changes
  (cert-manager rotating a Secret). gunicorn asks for the context on every new
  connection, so a rotation takes effect for the next handshake while
  established connections continue undisturbed: no request is dropped.

Example::

    paths = generate(Path("/tmp/certs"), "leasegate", "leasegate-system")
    ctx = ReloadingContext(paths.cert_file, paths.key_file).context()
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("leasegate.certs")


@dataclass(frozen=True)
class CertPaths:
    """Where a generated CA and serving certificate were written."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the API server may use for a Service-backed webhook."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local", "localhost"]


@dataclass(frozen=True)
class CertificateAuthority:
    """A small ECDSA P-256 CA that issues server and client certificates.

    Every CA gets a unique subject and a Subject Key Identifier, and what it
    issues an Authority Key Identifier: during a rotation, a caBundle holding
    the old and the new CA lets every verifier (Go's, OpenSSL's) find the right
    issuer instead of trying the first CA with a matching name.

    >>> ca = CertificateAuthority.create("leasegate-webhook-ca")
    >>> cert, key = ca.issue("leasegate.leasegate-system.svc", dns_names=["localhost"])
    """

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str, *, days: int = 365) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            # Unique per CA, so an old and a new CA are never confused by name.
            x509.NameAttribute(NameOID.SERIAL_NUMBER, os.urandom(8).hex()),
        ])
        cert = (
            _builder(name, name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)

    def issue(self, common_name: str, *, organizations: Sequence[str] = (),
              dns_names: Sequence[str] = (), ips: Sequence[str] = (), client: bool = False,
              days: int = 365) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A leaf certificate: for serving (``dns_names``/``ips`` as SANs) or, with
        ``client``, for client authentication (``organizations`` become groups)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            _builder(x509.Name(attrs), self.cert.subject, key.public_key(), days)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key


def pem(item: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    """PEM bytes of a certificate or (unencrypted PKCS#8) private key."""
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def generate(directory: Path, service: str, namespace: str, *, days: int = 365,
             extra_ips: tuple[str, ...] = ("127.0.0.1", "::1")) -> CertPaths:
    """Generate a CA and a serving certificate signed by it (ECDSA P-256).

    The key is written with mode 0600 and every file is replaced atomically,
    so a concurrent reader never sees half a file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(f"{service}-webhook-ca", days=days)
    cert, key = ca.issue(f"{service}.{namespace}.svc", dns_names=service_dns_names(service, namespace),
                         ips=extra_ips, days=days)
    paths = CertPaths(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    _write(paths.ca_file, pem(ca.cert))
    _write(paths.key_file, pem(key), mode=0o600)
    _write(paths.cert_file, pem(cert))
    return paths


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server-side context: TLS 1.2+, the given certificate chain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


class ReloadingContext:
    """An SSLContext that follows its certificate files.

    :meth:`context` stats the files at most every ``check_seconds`` and
    rebuilds the context when their modification time or size changed. A
    rotation caught half-written (key and certificate not matching) keeps the
    previous context until the next check.
    """

    def __init__(self, cert_file: str | Path, key_file: str | Path, *, check_seconds: float = 1.0) -> None:
        self._files = (str(cert_file), str(key_file))
        self._check = check_seconds
        self._lock = threading.Lock()
        self._stamp = self._fingerprint()
        self._ctx = server_context(*self._files)
        self._checked = time.monotonic()
        self.reloads = 0

    def _fingerprint(self) -> tuple[tuple[int, int], ...]:
        stats = [os.stat(f) for f in self._files]
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def context(self) -> ssl.SSLContext:
        """The current context (possibly rebuilt); cheap enough to call per connection."""
        now = time.monotonic()
        if now - self._checked < self._check:
            return self._ctx
        with self._lock:
            if now - self._checked < self._check:
                return self._ctx
            self._checked = now
            try:
                stamp = self._fingerprint()
                if stamp != self._stamp:
                    self._ctx = server_context(*self._files)
                    self._stamp = stamp
                    self.reloads += 1
                    log.info("serving certificate reloaded from %s", self._files[0])
            except (OSError, ssl.SSLError) as exc:
                log.warning("serving certificate not reloaded (keeping the previous one): %s", exc)
        return self._ctx
