"""The checked-in Pub/Sub stubs are exactly what protoc makes of the checked-in ``.proto``,
and the ``.proto`` carries the reference's field numbers (they are the wire contract)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb

PROTO_DIR = Path(pb.__file__).parent
GENERATED = [
    "pubsub_api_pb2.py",
    "pubsub_api_pb2.pyi",
    "pubsub_api_pb2_grpc.py",
    "pubsub_api_pb2_grpc.pyi",
]


def regenerate(root: Path) -> Path:
    """Run the generator command of the package docstring on a copy of the ``.proto``."""
    target = root / "aiosfstream" / "_pubsub_proto"
    target.mkdir(parents=True)
    shutil.copy(PROTO_DIR / "pubsub_api.proto", target)
    plugin = shutil.which("protoc-gen-mypy_grpc", path=str(Path(sys.executable).parent))
    assert plugin is not None, "mypy-protobuf (a test requirement) is not installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--plugin=protoc-gen-mypy_grpc={plugin}",
            "-I.",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            "--mypy_grpc_out=.",
            "aiosfstream/_pubsub_proto/pubsub_api.proto",
        ],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return target


def test_the_checked_in_stubs_match_the_proto(tmp_path: Path) -> None:
    fresh = regenerate(tmp_path)
    for name in GENERATED:
        assert (fresh / name).read_bytes() == (PROTO_DIR / name).read_bytes(), name


def test_the_generator_command_is_documented() -> None:
    import aiosfstream._pubsub_proto as package

    assert package.__doc__ is not None
    assert "python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=." in (
        package.__doc__
    )


def field(message: str, name: str) -> FieldDescriptor:
    return pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[name]


@pytest.mark.parametrize(
    ("message", "name", "number", "kind"),
    [
        ("FetchRequest", "topic_name", 1, FieldDescriptor.TYPE_STRING),
        ("FetchRequest", "replay_preset", 2, FieldDescriptor.TYPE_ENUM),
        ("FetchRequest", "replay_id", 3, FieldDescriptor.TYPE_BYTES),
        ("FetchRequest", "num_requested", 4, FieldDescriptor.TYPE_INT32),
        ("FetchRequest", "auth_refresh", 5, FieldDescriptor.TYPE_STRING),
        ("FetchResponse", "events", 1, FieldDescriptor.TYPE_MESSAGE),
        ("FetchResponse", "latest_replay_id", 2, FieldDescriptor.TYPE_BYTES),
        ("FetchResponse", "rpc_id", 3, FieldDescriptor.TYPE_STRING),
        ("FetchResponse", "pending_num_requested", 4, FieldDescriptor.TYPE_INT32),
        ("ConsumerEvent", "event", 1, FieldDescriptor.TYPE_MESSAGE),
        ("ConsumerEvent", "replay_id", 2, FieldDescriptor.TYPE_BYTES),
        ("ProducerEvent", "payload", 3, FieldDescriptor.TYPE_BYTES),
        ("ProducerEvent", "headers", 4, FieldDescriptor.TYPE_MESSAGE),
        ("TopicInfo", "schema_id", 5, FieldDescriptor.TYPE_STRING),
        ("TopicInfo", "rpc_id", 6, FieldDescriptor.TYPE_STRING),
        ("PublishResult", "correlation_key", 3, FieldDescriptor.TYPE_STRING),
        ("PublishRequest", "auth_refresh", 3, FieldDescriptor.TYPE_STRING),
        ("ManagedFetchRequest", "commit_replay_id_request", 5, FieldDescriptor.TYPE_MESSAGE),
        ("CommitReplayResponse", "process_time", 4, FieldDescriptor.TYPE_INT64),
    ],
)
def test_field_numbers_and_types_follow_the_reference(
    message: str, name: str, number: int, kind: int
) -> None:
    assert (field(message, name).number, field(message, name).type) == (number, kind)


def test_repeated_fields_are_repeated() -> None:
    repeated = {
        (message.name, item.name)
        for message in pb.DESCRIPTOR.message_types_by_name.values()
        for item in message.fields
        if item.is_repeated
    }
    assert repeated == {
        ("ProducerEvent", "headers"),
        ("FetchResponse", "events"),
        ("PublishRequest", "events"),
        ("PublishResponse", "results"),
        ("ManagedFetchResponse", "events"),
    }


def test_enums_have_the_reference_values() -> None:
    assert dict(pb.ReplayPreset.items()) == {"LATEST": 0, "EARLIEST": 1, "CUSTOM": 2}
    assert dict(pb.ErrorCode.items()) == {"UNKNOWN": 0, "PUBLISH": 1, "COMMIT": 2}


def test_the_service_has_the_six_rpcs_with_their_shapes() -> None:
    service = pb.DESCRIPTOR.services_by_name["PubSub"]
    assert service.full_name == "eventbus.v1.PubSub"
    shapes = {
        method.name: (
            method.input_type.name,
            method.output_type.name,
            method.client_streaming,
            method.server_streaming,
        )
        for method in service.methods
    }
    assert shapes == {
        "Subscribe": ("FetchRequest", "FetchResponse", True, True),
        "ManagedSubscribe": ("ManagedFetchRequest", "ManagedFetchResponse", True, True),
        "GetTopic": ("TopicRequest", "TopicInfo", False, False),
        "GetSchema": ("SchemaRequest", "SchemaInfo", False, False),
        "Publish": ("PublishRequest", "PublishResponse", False, False),
        "PublishStream": ("PublishRequest", "PublishResponse", True, True),
    }
