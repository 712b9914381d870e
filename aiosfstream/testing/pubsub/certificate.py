"""A throwaway self-signed TLS certificate for the emulator's ``127.0.0.1`` endpoint."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ServerCertificate", "generate_certificate"]


@dataclass(frozen=True)
class ServerCertificate:
    """A PEM certificate and its private key."""

    certificate: bytes
    private_key: bytes

    def __repr__(self) -> str:
        # The key is a secret: it never goes into a repr.
        return "<ServerCertificate for localhost and 127.0.0.1>"


def generate_certificate(
    valid_for: datetime.timedelta = datetime.timedelta(days=1),
) -> ServerCertificate:
    """Return a new certificate for ``localhost`` and ``127.0.0.1``, its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiosfstream Pub/Sub emulator")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A minute of slack for clocks that disagree a little.
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + valid_for)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # Clients trust it as their root, so it is a CA that may sign only itself.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ServerCertificate(
        certificate=certificate.public_bytes(serialization.Encoding.PEM),
        private_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
