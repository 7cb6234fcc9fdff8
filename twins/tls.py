"""Certificates for a twin's HTTPS listener, made fresh at start with trustme.

Shared by every twin that speaks TLS. The Key Vault SDK refuses bearer tokens over plain HTTP
and a Jenkins API token is a password, so the twins serve HTTPS only; a client must be able
to trust them without touching the system store, so it is pointed at the CA file written here
(``connection_verify=ca.pem``, ``verify=ca.pem``).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TwinCertificates:
    """Paths of the CA certificate (for clients) and the server key + chain (for the twin)."""

    ca_path: Path
    server_pem: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context using the issued certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.server_pem))
        return context


def make_certificates(
    cert_dir: Path, host: str, organization: str = "akv-rotator protocol twin"
) -> TwinCertificates:
    """Write ``ca.pem`` and ``server.pem`` (key + chain) for ``host``, localhost and 127.0.0.1.

    ``organization`` names the throwaway CA, so a certificate error says which twin it was.
    """
    names = ["127.0.0.1", "localhost"]
    if host not in names and not _is_wildcard(host):
        names.append(host)
    ca = trustme.CA(organization_name=organization)
    server = ca.issue_cert(*names)
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_path = cert_dir / "ca.pem"
    server_pem = cert_dir / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    server_pem.chmod(0o600)
    return TwinCertificates(ca_path=ca_path, server_pem=server_pem)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
