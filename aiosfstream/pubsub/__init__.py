"""The Salesforce Pub/Sub API (gRPC), with the names and promises of :class:`aiosfstream.Client`.

Needs the ``pubsub`` extra: ``pip install aiosfstream[pubsub]`` (grpcio, protobuf, fastavro).
"""

try:
    import fastavro as _fastavro  # noqa: F401
    import google.protobuf as _protobuf  # noqa: F401
    import grpc as _grpc  # noqa: F401
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"aiosfstream.pubsub needs the pubsub extra ({_missing.name} is missing): "
        "pip install 'aiosfstream[pubsub]'"
    ) from _missing

from aiosfstream.pubsub.client import DEFAULT_ENDPOINT, PubSubClient, SSLParameter
from aiosfstream.pubsub.errors import (
    InvalidEventPayload,
    PublishError,
    PublishResult,
    PubSubServerError,
)
from aiosfstream.pubsub.messages import marker_of

__all__ = [
    "DEFAULT_ENDPOINT",
    "InvalidEventPayload",
    "PubSubClient",
    "PubSubServerError",
    "PublishError",
    "PublishResult",
    "SSLParameter",
    "marker_of",
]
