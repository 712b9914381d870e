"""Packaging for aiosfstream."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "aiosfstream" / "_version.py").read_text()
).group(1)  # type: ignore[union-attr]

#: The Pub/Sub API (gRPC + Avro).  The floors are those of the checked-in generated code in
#: aiosfstream/_pubsub_proto: it refuses an older grpcio or protobuf, and protobuf warns on
#: another major version.
PUBSUB_REQUIRES = ["grpcio>=1.85.1", "protobuf>=7.35.1,<8", "fastavro>=1.12.1"]
#: The stub-match test regenerates the stubs and compares them byte for byte, so the
#: generators are pinned to the versions that wrote the checked-in files.
PROTO_GENERATORS = ["grpcio-tools==1.85.1", "mypy-protobuf==5.1.0"]

TEST_REQUIRES = [
    *PUBSUB_REQUIRES,
    *PROTO_GENERATORS,
    "orjson>=3.9",
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "PyJWT[crypto]>=2.8",
    "redis>=5.0.1",
]
LINT_REQUIRES = [
    "mypy>=1.11",
    "ruff>=0.6",
    "types-python-dateutil",
    "types-protobuf",
    "types-grpcio",
]
DOCS_REQUIRES = ["sphinx>=7.2"]

setup(
    name="aiosfstream",
    version=VERSION,
    description="asyncio client for the Salesforce Streaming API (CometD/Bayeux)",
    long_description=(HERE / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["aiosfstream", "aiosfstream.*"]),
    package_data={"aiosfstream": ["py.typed"]},
    install_requires=["aiohttp>=3.11", "python-dateutil>=2.8"],
    extras_require={
        "jwt": ["PyJWT[crypto]>=2.8"],
        "redis": ["redis>=5.0.1"],
        "orjson": ["orjson>=3.9"],
        "pubsub": PUBSUB_REQUIRES,
        "test": TEST_REQUIRES,
        "dev": TEST_REQUIRES + LINT_REQUIRES + DOCS_REQUIRES,
    },
    entry_points={
        "pytest11": ["aiosfstream = aiosfstream.testing.pytest_plugin"],
        "console_scripts": ["aiosfstream = aiosfstream.cli:main"],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Framework :: AsyncIO",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    ],
)
