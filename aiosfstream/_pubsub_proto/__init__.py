"""The Pub/Sub API's wire contract: ``pubsub_api.proto`` and the Python code generated from it.

Private and neutral: the client (``aiosfstream.pubsub``) and the emulator
(``aiosfstream.testing.pubsub``) both import the stubs from here, and nothing else::

    from aiosfstream._pubsub_proto import pubsub_api_pb2 as pb, pubsub_api_pb2_grpc as pb_grpc

The four generated files are checked in; never edit them by hand. After a change to the
``.proto``, regenerate them from the repository root, with the virtualenv's ``bin`` on ``PATH``
(``protoc-gen-mypy_grpc`` comes from mypy-protobuf) and the versions pinned in setup.py's test
requirements (``tests/pubsub_emulator/test_proto.py`` fails if the files differ)::

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \\
        --mypy_grpc_out=. aiosfstream/_pubsub_proto/pubsub_api.proto

Running from the root with ``-I.`` makes protoc write package-qualified imports
(``from aiosfstream._pubsub_proto import pubsub_api_pb2``), so no file needs patching.
"""

__all__: list[str] = []
