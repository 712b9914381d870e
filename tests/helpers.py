"""Small helpers shared by the test modules."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from aiosfstream import SalesforceStreamingClient
from aiosfstream.testing import DEFAULT_CREDENTIALS


def require_tool(name: str) -> str:
    """Return the path of the executable *name*, or skip the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def emulator_client(login_url: str, **options: Any) -> SalesforceStreamingClient:
    """A client that logs in to the emulator at *login_url* as its default user."""
    return SalesforceStreamingClient(
        consumer_key=DEFAULT_CREDENTIALS.consumer_key,
        consumer_secret=DEFAULT_CREDENTIALS.consumer_secret,
        username=DEFAULT_CREDENTIALS.username,
        password=DEFAULT_CREDENTIALS.password,
        login_url=login_url,
        allow_insecure_http=True,
        **options,
    )


def self_signed_certificate(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """Write a certificate and key for 127.0.0.1; return their paths and the PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, cert_pem
