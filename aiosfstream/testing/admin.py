"""The ``/__admin__/`` HTTP API: drive the emulator from tests written in any language.

Every endpoint takes and returns JSON. Errors speak HTTP: a status (400 bad input, 404
unknown endpoint or channel, 405 wrong method, 500 a bug of the emulator) and a body
``{"error": "<a sentence for a human>"}``, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .state import ChannelNotFound

if TYPE_CHECKING:
    from .server import SalesforceEmulator

__all__ = ["ADMIN_PREFIX", "AdminAPI"]

ADMIN_PREFIX = "/__admin__"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_logger = logging.getLogger(__name__)
#: How the admin API's messages name the JSON types a field must have.
_JSON_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "an array",
}


class _BadRequest(Exception):
    """The request's input is wrong; the message says how, for a human."""


@contextlib.contextmanager
def _invalid_input() -> Iterator[None]:
    """Turn the emulator's refusal of a value (ValueError, TypeError) into HTTP 400."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise _BadRequest(str(exc)) from None


class AdminAPI:
    """Routes that expose :class:`~aiosfstream.testing.SalesforceEmulator`'s controls."""

    def __init__(self, emulator: SalesforceEmulator) -> None:
        self.emulator = emulator

    def add_routes(self, app: web.Application, prefix: str = ADMIN_PREFIX) -> None:
        """Register the endpoints under *prefix*, and the JSON errors of every path there."""
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "", self.overview),
            ("GET", "/settings", self.get_settings),
            ("POST", "/settings", self.configure),
            ("GET", "/stats", self.stats),
            ("POST", "/stats/reset", self.reset_stats),
            ("GET", "/clients", self.clients),
            ("GET", "/channels", self.list_channels),
            ("POST", "/channels", self.create_channel),
            ("GET", "/events", self.events),
            ("POST", "/publish", self.publish),
            ("POST", "/revoke", self.revoke),
            ("POST", "/expire", self.expire),
            ("POST", "/disconnect", self.disconnect),
            ("POST", "/drop", self.drop),
            ("POST", "/purge", self.purge),
            ("POST", "/advance", self.advance),
            ("POST", "/fail", self.fail),
            ("POST", "/disconnect-next", self.disconnect_next),
            ("POST", "/instance-url", self.set_instance_url),
            ("POST", "/users", self.add_user),
            ("POST", "/user-permissions", self.set_user_permissions),
            ("POST", "/refresh-token", self.refresh_token),
        ]
        self._endpoints = [f"{method} {prefix}{path}" for method, path, _ in routes]
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, handler)
        app.middlewares.append(_json_errors(prefix))

    async def overview(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__``: URLs, default credentials, channels, clients and counters."""
        emulator = self.emulator
        credentials = emulator.credentials
        return web.json_response(
            {
                "url": emulator.url,
                "token_url": emulator.token_url,
                "instance_url": emulator.instance_url,
                "cometd_url": emulator.cometd_url(),
                "credentials": {
                    "consumer_key": credentials.consumer_key,
                    "consumer_secret": credentials.consumer_secret,
                    "username": credentials.username,
                    "password": credentials.password,
                },
                "channels": emulator.channels,
                "clients": emulator.client_ids,
                "stats": emulator.stats.as_dict(),
                "settings": emulator.settings.as_dict(),
                "endpoints": self._endpoints,
            }
        )

    async def get_settings(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/settings``: the org's limits and switches."""
        return web.json_response(self.emulator.settings.as_dict())

    async def configure(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/settings {"<setting>": value, ...}``: change settings.

        As :meth:`SalesforceEmulator.configure`; returns every setting.
        """
        body = await _json_body(request)
        with _invalid_input():
            settings = self.emulator.configure(**body)
        return web.json_response(settings.as_dict())

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/stats``: request counters."""
        return web.json_response(self.emulator.stats.as_dict())

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/stats/reset``: zero the counters."""
        self.emulator.stats.reset()
        return web.json_response(self.emulator.stats.as_dict())

    async def clients(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/clients``: live sessions and their subscriptions."""
        sessions = self.emulator.state.live_sessions()
        return web.json_response(
            [
                {
                    "client_id": session.client_id,
                    "username": session.username,
                    "subscriptions": list(session.subscriptions),
                    "pending": len(session.pending),
                    "holding": session.holding,
                }
                for session in sessions
            ]
        )

    async def list_channels(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/channels``: channels with their retained event counts."""
        channels = self.emulator.state.channels.values()
        return web.json_response(
            [
                {"name": c.name, "events": len(c.events), "last_replay_id": c.last_replay_id}
                for c in channels
            ]
        )

    async def create_channel(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/channels {"name", "fields"?, "where_fields"?, ...}``.

        Also ``"max_subscribers"`` and ``"users"``, as
        :meth:`SalesforceEmulator.create_channel`.
        """
        body = await _json_body(request)
        name = _get(body, "name", str)
        with _invalid_input():
            self.emulator.create_channel(
                name,
                fields=_get(body, "fields", list, None),
                where_fields=_get(body, "where_fields", list, []),
                max_subscribers=_get(body, "max_subscribers", int, None),
                users=_get(body, "users", list, None),
            )
        return web.json_response({"name": name}, status=201)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/events?channel=/topic/X``: retained event messages."""
        channel = request.query.get("channel")
        if not channel:
            raise _BadRequest("query parameter 'channel' is required")
        return web.json_response(self.emulator.events(channel))

    async def publish(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/publish``: publish an event, return the delivered message.

        Body: ``{"channel", "payload"?, "event_type"?, "replay_id"?, "raw"?}``.
        """
        body = await _json_body(request)
        channel = _get(body, "channel", str)
        event_type = _get(body, "event_type", str, None)
        replay_id = _get(body, "replay_id", int, None)
        raw = _get(body, "raw", bool, False)
        with _invalid_input():
            message = self.emulator.publish(
                channel, body.get("payload"), event_type=event_type, replay_id=replay_id, raw=raw
            )
        return web.json_response(message)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/revoke {"username"?}``: revoke tokens."""
        body = await _json_body(request)
        count = self.emulator.revoke_tokens(_get(body, "username", str, None))
        return web.json_response({"revoked": count})

    async def expire(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/expire {"client_id"?, "notify"?}``: drop Bayeux sessions.

        ``"notify": false`` leaves held connects waiting, as
        :meth:`SalesforceEmulator.expire_client` does.
        """
        body = await _json_body(request)
        ids = self.emulator.expire_client(
            _get(body, "client_id", str, None), notify=_get(body, "notify", bool, True)
        )
        return web.json_response({"clients": ids})

    async def disconnect(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/disconnect {"client_id"?}``: server-initiated ``/meta/disconnect``."""
        body = await _json_body(request)
        ids = self.emulator.server_disconnect(_get(body, "client_id", str, None))
        return web.json_response({"clients": ids})

    async def drop(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/drop``: cut every other open connection."""
        self.emulator._drop(keep=request.transport)
        return web.json_response({"dropped": True})

    async def purge(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/purge {"before"?}``: drop events past retention (or before a time)."""
        body = await _json_body(request)
        count = self.emulator.purge_retention(_get(body, "before", float, None))
        return web.json_response({"purged": count})

    async def advance(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/advance {"seconds"}``: move the clock forward."""
        body = await _json_body(request)
        seconds = _get(body, "seconds", float)
        with _invalid_input():
            self.emulator.advance(seconds)
        return web.json_response({"now": self.emulator.now()})

    async def fail(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/fail``: arm a failure, as :meth:`SalesforceEmulator.fail_next`.

        Body: ``{"operation", "reason"?, "error"?, "advice"?, "http_status"?, "body"?,
        "content_type"?, "times"?, "headers"?}``; ``headers`` is an object of strings.
        """
        body = await _json_body(request)
        operation = _get(body, "operation", str)
        options = {
            "error": _get(body, "error", str, None),
            "advice": _get(body, "advice", dict, None),
            "http_status": _get(body, "http_status", int, None),
            "body": _get(body, "body", str, None),
            "content_type": _get(body, "content_type", str, "text/html"),
            "times": _get(body, "times", int, 1),
            "headers": _get(body, "headers", dict, None),
        }
        with _invalid_input():
            self.emulator.fail_next(operation, _get(body, "reason", str, None), **options)
        return web.json_response({"armed": operation})

    async def disconnect_next(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/disconnect-next {"operation", "times"?}``.

        End the session in the next reply(ies) to *operation*, as
        :meth:`SalesforceEmulator.disconnect_next`.
        """
        body = await _json_body(request)
        operation = _get(body, "operation", str)
        times = _get(body, "times", int, 1)
        with _invalid_input():
            self.emulator.disconnect_next(operation, times=times)
        return web.json_response({"armed": operation})

    async def set_instance_url(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/instance-url {"url": "http://..." | null}``.

        Set the ``instance_url`` token responses hand out (``null``: the emulator's URL).
        """
        body = await _json_body(request)
        if "url" not in body:
            raise _BadRequest("field 'url' is required (null for the emulator's own URL)")
        url = _get(body, "url", str, None)
        with _invalid_input():
            self.emulator.instance_url = url
        return web.json_response({"instance_url": self.emulator.instance_url})

    async def add_user(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/users {"username", "password"}``."""
        body = await _json_body(request)
        user = self.emulator.add_user(_get(body, "username", str), _get(body, "password", str))
        return web.json_response({"username": user.username, "user_id": user.user_id}, status=201)

    async def set_user_permissions(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/user-permissions {"username"?, "streaming_enabled"?, ...}``.

        Also ``"view_all_data"``, ``"can_create_channels"`` and ``"hidden_fields"``, as
        :meth:`SalesforceEmulator.set_user_permissions`; returns the user's permissions.
        """
        body = await _json_body(request)
        username = _get(body, "username", str, None)
        switches = {
            name: _get(body, name, bool, None)
            for name in ("streaming_enabled", "view_all_data", "can_create_channels")
        }
        with _invalid_input():
            user = self.emulator.set_user_permissions(
                username, hidden_fields=_get(body, "hidden_fields", list, None), **switches
            )
        return web.json_response(
            {
                "username": user.username,
                "streaming_enabled": user.streaming_enabled,
                "view_all_data": user.view_all_data,
                "can_create_channels": user.can_create_channels,
                "hidden_fields": sorted(user.hidden_fields),
            }
        )

    async def refresh_token(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/refresh-token {"username"?, "consumer_key"?}``: mint one."""
        body = await _json_body(request)
        username = _get(body, "username", str, None)
        consumer_key = _get(body, "consumer_key", str, None)
        state = self.emulator.state
        if username is not None and username not in state.users:
            raise _BadRequest(f"unknown user {username!r}")
        if consumer_key is not None and consumer_key not in state.apps:
            raise _BadRequest(f"unknown consumer key {consumer_key!r}")
        token = self.emulator.issue_refresh_token(username, consumer_key)
        return web.json_response({"refresh_token": token})


def _json_errors(prefix: str) -> Any:
    """Return a middleware that answers errors of the paths under *prefix* in JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path != prefix and not request.path.startswith(prefix + "/"):
            return await handler(request)
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(400, str(exc))
        except ChannelNotFound as exc:
            return _error(
                404, f"channel {exc.channel} does not exist; create it with POST {prefix}/channels"
            )
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            text = f"{request.method} is not allowed on {request.path}; use {allowed}"
            return _error(405, text, {"Allow": allowed})
        except web.HTTPNotFound:
            text = f"no endpoint {request.path}; GET {prefix} lists the endpoints"
            return _error(404, text)
        except web.HTTPException as exc:
            return _error(exc.status, exc.text or exc.reason)
        except Exception:
            _logger.exception("admin request %s %s failed", request.method, request.path)
            return _error(500, "the emulator failed to serve this request; see its log")

    return middleware


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        text = await request.text()
    except UnicodeDecodeError:
        raise _BadRequest("the body is not valid UTF-8 text") from None
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise _BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


_MISSING: Any = object()


def _get(body: dict[str, Any], name: str, kind: type[Any], default: Any = _MISSING) -> Any:
    """Read field *name* of JSON type *kind* (ints are accepted where numbers are expected)."""
    if name not in body or body[name] is None:
        if default is _MISSING:
            raise _BadRequest(f"field {name!r} is required")
        return default
    value = body[name]
    if isinstance(value, bool):
        valid = kind is bool
    elif kind is float:
        valid = isinstance(value, (int, float))
    else:
        valid = isinstance(value, kind)
    if not valid:
        raise _BadRequest(f"field {name!r} must be {_JSON_TYPES[kind]}")
    return float(value) if kind is float else value
