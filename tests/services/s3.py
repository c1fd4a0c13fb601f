"""A real S3 endpoint for tests: moto's standalone HTTP server, started once per session.

``s3_server`` runs ``ThreadedMotoServer`` on a free loopback port. ``s3_endpoint`` gives each test
its own fresh bucket and sets dummy AWS credentials in the environment (pyarrow, boto3 and fsql
all read them from there), so tests never share objects and never reach a real AWS account::

    def test_upload(s3_endpoint):
        fs = s3_endpoint.filesystem()          # pyarrow.fs.S3FileSystem on the endpoint
        fs.create_dir(f"{s3_endpoint.bucket}/x")
        s3_endpoint.client().list_objects_v2(Bucket=s3_endpoint.bucket)   # boto3
        config = {"offline_store": {"uri": s3_endpoint.uri,
                                    "s3_endpoint_url": s3_endpoint.endpoint_url}}
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.services._util import free_port, port_open, wait_until

REGION = "us-east-1"
#: the environment a test sees while it holds an ``s3_endpoint``: dummy credentials, no lookups
#: of EC2 instance metadata (which would hang for seconds without network) and no ~/.aws files.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@dataclass(frozen=True)
class S3Server:
    """The running moto server: ``endpoint_url`` is ``http://127.0.0.1:PORT``."""

    host: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class S3Endpoint:
    """One test's bucket on the moto server.

    ``uri`` is ``s3://<bucket>/<prefix>``, the form fsql's offline-store config takes.
    """

    endpoint_url: str
    bucket: str
    prefix: str
    region: str = REGION

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def endpoint_override(self) -> str:
        """``host:port`` as pyarrow's ``S3FileSystem(endpoint_override=...)`` wants it."""
        return self.endpoint_url.split("://", 1)[1]

    def filesystem(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` talking to this endpoint over plain HTTP."""
        from pyarrow import fs

        return fs.S3FileSystem(
            endpoint_override=self.endpoint_override,
            scheme="http",
            region=self.region,
            access_key=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
            secret_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            session_token=DUMMY_AWS_ENV["AWS_SESSION_TOKEN"],
        )

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)

    def keys(self, prefix: str | None = None) -> list[str]:
        """Every object key in the bucket under ``prefix`` (default: this test's prefix), sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=self.prefix if prefix is None else prefix
        ):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server on a free loopback port, for the whole test session."""
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO: thousands of lines in a failing test's report
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_until(lambda: port_open(port), timeout=30, what=f"moto S3 server on port {port}")
        yield S3Server("127.0.0.1", port)
    finally:
        server.stop()


@pytest.fixture()
def s3_endpoint(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    """A fresh, empty bucket on the session's moto server plus dummy AWS credentials in the
    environment for the duration of the test."""
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    # S3 bucket names: 3-63 chars of lowercase letters, digits and hyphens.
    bucket = f"fsql-test-{uuid.uuid4().hex[:16]}"
    endpoint = S3Endpoint(endpoint_url=s3_server.endpoint_url, bucket=bucket, prefix="offline")
    endpoint.client().create_bucket(Bucket=bucket)
    yield endpoint
