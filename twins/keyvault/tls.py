"""Certificates for the Key Vault twin: the shared :mod:`twins.tls` helpers under this CA name.

The Key Vault SDK refuses bearer tokens over plain HTTP, so the twin must speak TLS; the
certificate code itself lives in :mod:`twins.tls` so the Jenkins twin can use it without
importing this package (and with it the Azure SDK).
"""

from __future__ import annotations

from pathlib import Path

from twins import tls
from twins.tls import TwinCertificates

__all__ = ["ORGANIZATION", "TwinCertificates", "make_certificates"]

ORGANIZATION = "akv-rotator Key Vault twin"


def make_certificates(cert_dir: Path, host: str) -> TwinCertificates:
    """Write ``ca.pem`` and ``server.pem`` for ``host`` under a CA named after this twin."""
    return tls.make_certificates(cert_dir, host, organization=ORGANIZATION)
