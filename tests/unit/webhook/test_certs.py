"""Generated certificates: a serving chain that verifies, and rotation-safe CAs."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import pytest

from webhook.certs import CertificateAuthority, generate, pem, server_context


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A full TLS handshake between two contexts, in memory (no sockets)."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, conn in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    conn.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def _client(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    return ctx


def test_generated_chain_verifies_for_service_names_and_loopback(tmp_path: Path) -> None:
    paths = generate(tmp_path, "leasegate", "leasegate-system")
    server = server_context(paths.cert_file, paths.key_file)
    for host in ("leasegate.leasegate-system.svc", "localhost", "127.0.0.1"):
        _handshake(server, _client(paths.ca_pem()), host)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, _client(paths.ca_pem()), "elsewhere.example")
    assert oct((paths.key_file.stat().st_mode) & 0o777) == "0o600"


@pytest.mark.parametrize("new_first", [False, True])
def test_bundle_of_old_and_new_ca_verifies_the_new_certificate(new_first: bool) -> None:
    # During a rotation the caBundle holds both CAs; whichever comes first, the
    # verifier must find the new certificate's issuer (unique subject + key ids).
    old = CertificateAuthority.create("leasegate-webhook-ca")
    new = CertificateAuthority.create("leasegate-webhook-ca")
    assert old.cert.subject != new.cert.subject
    cert, key = new.issue("leasegate.leasegate-system.svc", dns_names=["localhost"])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tls.crt").write_bytes(pem(cert))
        (Path(tmp) / "tls.key").write_bytes(pem(key))
        server = server_context(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
    bundle = pem(new.cert) + pem(old.cert) if new_first else pem(old.cert) + pem(new.cert)
    _handshake(server, _client(bundle), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, _client(pem(old.cert)), "localhost")


def test_client_certificates_carry_groups_as_organizations() -> None:
    ca = CertificateAuthority.create("test-ca")
    cert, _ = ca.issue("alice", organizations=["developers"], client=True)
    orgs = [a.value for a in cert.subject if a.oid.dotted_string == "2.5.4.10"]
    assert orgs == ["developers"]
