"""TLS with the certificate the emulator generates at start."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cryptography import x509
from grpc import aio

from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb
from aiosfstream._pubsub_proto import pubsub_api_pb2_grpc as pb_grpc
from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.pubsub import PubSubEmulator

from .support import PE_TOPIC, call_metadata, open_stub


async def test_a_client_trusting_the_certificate_connects(sf_emulator: SalesforceEmulator) -> None:
    async with PubSubEmulator(sf_emulator, tls=True) as pubsub:
        assert pubsub.certificate is not None
        async with open_stub(pubsub, root_certificates=pubsub.certificate) as stub:
            info = await stub.GetTopic(
                pb.TopicRequest(topic_name=PE_TOPIC), metadata=call_metadata(sf_emulator)
            )
    assert info.topic_name == PE_TOPIC


async def test_the_certificate_names_the_endpoint(sf_emulator: SalesforceEmulator) -> None:
    async with PubSubEmulator(sf_emulator, tls=True) as pubsub:
        assert pubsub.certificate is not None
        certificate = x509.load_pem_x509_certificate(pubsub.certificate)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert "PRIVATE KEY" not in repr(pubsub)


async def test_a_client_that_does_not_trust_it_cannot_connect(
    sf_emulator: SalesforceEmulator,
) -> None:
    async with (
        PubSubEmulator(sf_emulator, tls=True) as pubsub,
        PubSubEmulator(sf_emulator, tls=True) as other,
    ):
        assert other.certificate is not None and other.certificate != pubsub.certificate
        async with open_stub(pubsub, root_certificates=other.certificate) as stub:
            refusal = await _failure(stub)
        async with open_stub(pubsub) as plaintext:
            plain_refusal = await _failure(plaintext)
    assert refusal == grpc.StatusCode.UNAVAILABLE
    assert plain_refusal == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_has_no_certificate(sf_pubsub_emulator: PubSubEmulator) -> None:
    assert sf_pubsub_emulator.certificate is None
    assert sf_pubsub_emulator.endpoint.startswith("127.0.0.1:")


async def _failure(stub: pb_grpc.PubSubAsyncStub) -> grpc.StatusCode:
    """The status of a call that cannot get through (no metadata: it never gets that far)."""
    with pytest.raises(aio.AioRpcError) as info:
        await asyncio.wait_for(stub.GetTopic(pb.TopicRequest(topic_name=PE_TOPIC), timeout=3), 5)
    return info.value.code()
