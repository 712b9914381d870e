"""Certificates are verified by default; an ``ssl`` context can trust another one."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from aiohttp import web

from aiosfstream.cometd import Client, TransportError
from tests.helpers import self_signed_certificate


class TLSBayeux(NamedTuple):
    url: str
    trusting: ssl.SSLContext


async def handshake_only(request: web.Request) -> web.Response:
    (message,) = await request.json()
    return web.json_response(
        [
            {
                "channel": message["channel"],
                "id": message["id"],
                "successful": True,
                "clientId": "tls-client",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        ]
    )


@pytest.fixture
async def tls_bayeux(tmp_path: Path) -> AsyncIterator[TLSBayeux]:
    """A Bayeux endpoint on https with a self-signed certificate; it only handshakes."""
    cert_file, key_file, cert_pem = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    app = web.Application()
    app.router.add_post("/cometd", handshake_only)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield TLSBayeux(
            f"https://127.0.0.1:{port}/cometd",
            ssl.create_default_context(cadata=cert_pem.decode()),
        )
    finally:
        await runner.cleanup()


async def test_an_untrusted_certificate_is_refused_by_default(tls_bayeux: TLSBayeux) -> None:
    client = Client(tls_bayeux.url, connection_timeout=1)
    with pytest.raises(TransportError) as caught:
        await client.open()
    assert isinstance(caught.value.__cause__, aiohttp.ClientSSLError)
    assert client.closed


async def test_an_ssl_context_can_trust_it(tls_bayeux: TLSBayeux) -> None:
    client = Client(tls_bayeux.url, ssl=tls_bayeux.trusting)
    await client.open()
    assert not client.closed
    await client.close()
