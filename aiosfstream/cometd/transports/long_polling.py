"""Bayeux over HTTP long polling: every request is one POST of a JSON array."""

from __future__ import annotations

import aiohttp

from aiosfstream.cometd.constants import MAX_REQUEST_BYTES
from aiosfstream.cometd.exceptions import (
    HTTPStatusError,
    ResponseTooLargeError,
    TransportInvalidOperation,
    shorten,
)
from aiosfstream.cometd.messages import validate_payload
from aiosfstream.cometd.transports.base import (
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
        body = self._dumps(payload)
        data = body.encode("utf-8") if isinstance(body, str) else body
        if len(data) > self.max_request_bytes:
            raise TransportInvalidOperation(
                f"request of {len(data)} bytes exceeds the limit of {self.max_request_bytes} bytes"
            )
        request_headers = {"Content-Type": "application/json", **headers}
        channel = payload[0].get("channel", "?") if payload else "?"
        what = f"{channel} request to {self.url}"
        with translate_transport_errors(what, timeout):
            async with self._session.post(
                self.url,
                data=data,
                headers=request_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
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
                text = await self._read_body(response, what)
            if "json" not in content_type and not _looks_like_json(text):
                raise HTTPStatusError(
                    f"{what}: expected JSON but got {shorten(content_type) or 'no content type'} "
                    f"(HTTP {status})",
                    status,
                )
            return validate_payload(self._loads(text))

    async def _read_body(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        """Read the body, giving up as soon as it passes ``max_response_bytes``.

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
        body = bytearray()
        # iter_any hands over what has arrived; aiohttp's flow control keeps that to
        # a few buffers, so at most about the limit is ever held.
        async for chunk in response.content.iter_any():
            if len(body) + len(chunk) > limit:
                raise ResponseTooLargeError(
                    f"{what}: the response is larger than max_response_bytes "
                    f"({limit} bytes); the rest was not read",
                    limit,
                )
            body += chunk
        return bytes(body)


def _looks_like_json(body: bytes) -> bool:
    """Some servers label JSON as text; accept a body that starts like a JSON array."""
    return body.lstrip()[:1] == b"["
