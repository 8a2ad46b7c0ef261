"""A CA of the test bed's own and server certificates it signs (openssl), for registries with TLS."""

from __future__ import annotations

from pathlib import Path

from dockerbed import processes


def create_ca(certificate: Path, key: Path, name: str, days: int) -> None:
    """A self-signed CA certificate and its key."""
    certificate.parent.mkdir(parents=True, exist_ok=True)
    processes.check("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(certificate),
                    "-days", str(days), "-subj", f"/CN={name}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip


def server_certificate(ca_certificate: Path, ca_key: Path, certificate: Path, key: Path, ip: str, days: int) -> None:
    """A server certificate for `ip` (its subjectAltName), signed by the CA."""
    request, ext = certificate.with_suffix(".csr"), certificate.with_suffix(".ext")
    processes.check("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request), "-subj", f"/CN={ip}")
    ext.write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")  # fmt: skip
    processes.check("openssl", "x509", "-req", "-in", str(request), "-CA", str(ca_certificate), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(certificate), "-days", str(days), "-extfile", str(ext))  # fmt: skip
