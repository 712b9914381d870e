"""Bayeux over HTTP long polling: every request is one POST of a JSON array."""

from __future__ import annotations

import asyncio

import aiohttp

from aiosfstream.cometd.constants import MAX_REQUEST_BYTES
from aiosfstream.cometd.decoder import ArrayDecoder
from aiosfstream.cometd.exceptions import (
    HTTPStatusError,
    ResponseTooLargeError,
    TransportInvalidOperation,
    TransportTimeoutError,
    shorten,
)
from aiosfstream.cometd.messages import validate_payload
from aiosfstream.cometd.transports.base import (
    Pacer,
    Receiver,
    Transport,
    redirect_error,
    translate_transport_errors,
)
from aiosfstream.typing import Headers, Payload

__all__ = ["LongPollingTransport"]


class LongPollingTransport(Transport):
    """POSTs each payload and returns the decoded answer.

    Requests larger than :data:`~aiosfstream.cometd.constants.MAX_REQUEST_BYTES` are
    refused before they are sent: Salesforce answers them with HTTP 413. Responses
    larger than ``max_response_bytes`` are refused without being read in full.
    """

    max_request_bytes = MAX_REQUEST_BYTES

    async def send(self, payload: Payload, headers: Headers, *, timeout: float | None) -> Payload:
        received: Payload = []

        async def collect(messages: Payload) -> None:
            received.extend(messages)

        await self.stream(payload, headers, timeout=timeout, deliver=collect)
        return received

    async def stream(
        self,
        payload: Payload,
        headers: Headers,
        *,
        timeout: float | None,
        deliver: Receiver,
        pace: Pacer | None = None,
    ) -> None:
        """POST *payload*; decode the answer as it arrives and hand it over in groups.

        While *deliver* or *pace* waits, nothing more is read: the rest of the body
        stays with the server and the sockets, not in memory. *pace* is awaited before
        each piece is read, the first one too, so a request can go out while the
        receiver is still busy: its answer is on its way meanwhile. *timeout* bounds
        the time spent waiting for the server (the answer to start, and each piece of
        it), not the time spent in *deliver* or *pace*.
        """
        body = self._dumps(payload)
        data = body.encode("utf-8") if isinstance(body, str) else body
        if len(data) > self.max_request_bytes:
            raise TransportInvalidOperation(
                f"request of {len(data)} bytes exceeds the limit of {self.max_request_bytes} bytes"
            )
        request_headers = {"Content-Type": "application/json", **headers}
        channel = payload[0].get("channel", "?") if payload else "?"
        what = f"{channel} request to {self.url}"
        try:
            await self._exchange(data, request_headers, what, timeout, deliver, pace)
        except _DeliveryFailed as failed:
            # An error of the receiving side (an extension, a storage) is not the
            # transport's: it leaves as it was raised.
            raise failed.error from failed.error.__cause__

    async def _exchange(
        self,
        data: bytes,
        request_headers: dict[str, str],
        what: str,
        timeout: float | None,
        deliver: Receiver,
        pace: Pacer | None,
    ) -> None:
        with translate_transport_errors(what, timeout):
            async with self._session.post(
                self.url,
                data=data,
                headers=request_headers,
                # sock_read bounds each wait for the server and is stopped while the
                # body is not read: a slow consumer is not a slow server.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
                ssl=self._ssl,
                proxy=self._proxy,
                # A 307 or 308 would re-post the session, and the Authorization header,
                # to whatever host it names, even a plain-http one.
                allow_redirects=False,
            ) as response:
                status = response.status
                content_type = response.content_type
                # The body of a redirect or an error is never read: it is not needed,
                # and waiting for it could turn a clear refusal into a timeout.
                if 300 <= status < 400:
                    raise redirect_error(what, status, response.headers.get("Location"))
                if status >= 400:
                    raise HTTPStatusError(
                        f"{what} failed with HTTP {status} {shorten(response.reason or '')} "
                        f"({shorten(content_type)})",
                        status,
                    )
                await self._read_body(response, what, timeout, deliver, pace)

    async def _read_body(
        self,
        response: aiohttp.ClientResponse,
        what: str,
        timeout: float | None,
        deliver: Receiver,
        pace: Pacer | None,
    ) -> None:
        """Decode the body piece by piece; give up as soon as it passes ``max_response_bytes``.

        Leaving the ``async with`` block with the body unread closes the connection, so
        the rest of a too large body is never received.
        """
        limit = self.max_response_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            raise ResponseTooLargeError(
                f"{what}: the response announces {declared} bytes, more than "
                f"max_response_bytes ({limit} bytes); not read",
                limit,
            )
        # A compressed body is counted decoded: its announced length tells nothing then.
        complete_at = None if "Content-Encoding" in response.headers else declared
        decoder = ArrayDecoder(self._loads)
        expects_json = "json" in response.content_type
        content = response.content
        loop = asyncio.get_running_loop()
        waited, size = 0.0, 0
        while True:
            if pace is not None:
                await pace()
            before = loop.time()
            chunk = await content.readany()
            waited += loop.time() - before
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(
                    f"{what}: the response is larger than max_response_bytes "
                    f"({limit} bytes); the rest was not read",
                    limit,
                )
            if timeout is not None and waited > timeout:
                # A server that sends a byte now and then never trips sock_read.
                raise TransportTimeoutError(f"{what}: the answer took over {timeout:g} s")
            if not expects_json and chunk.strip():
                # Some servers label JSON as text; a body that is no JSON array is not ours.
                if chunk.lstrip()[:1] == b"[":
                    expects_json = True
                else:
                    raise HTTPStatusError(
                        f"{what}: expected JSON but got "
                        f"{shorten(response.content_type) or 'no content type'} "
                        f"(HTTP {response.status})",
                        response.status,
                    )
            # A body of a known length is complete once that much came: one decode
            # of the whole, rather than a cut now and the rest at the end of the stream.
            final = not chunk or size == complete_at or content.at_eof()
            messages = decoder.decode(chunk, final=final)
            if messages:
                checked = validate_payload(messages)
                try:
                    await deliver(checked)
                except Exception as error:
                    raise _DeliveryFailed(error) from None
            if final:
                return


class _DeliveryFailed(Exception):
    """Carries an error of ``deliver`` past the translation of transport errors."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error
