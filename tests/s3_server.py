"""A real S3-compatible server on loopback for the tests: moto's, in a child process.

A child process, not a thread of the test process, so what the tests measure (memory of a
transfer) is the client's alone. `python -m tests.s3_server` serves until its standard input
closes and prints the port it listens on as its first line.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-0123456789"
REGION = "us-east-1"


class S3Server:
    """The child process and its address."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.s3_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the server is listening
        if not line.strip().isdigit():
            self.process.kill()
            raise RuntimeError(f"the S3 test server did not start (it said {line!r})")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self) -> S3Client:
        """A client of the server, as the tests use to look into buckets."""
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        ).client("s3", endpoint_url=self.url, config=Config(s3={"addressing_style": "path"}))

    def new_bucket(self) -> Bucket:
        """A fresh, empty bucket."""
        name = f"test-{uuid.uuid4().hex[:20]}"
        client = self.client()
        client.create_bucket(Bucket=name)
        return Bucket(self, name, client)

    def stop(self) -> None:
        """Close the child's standard input (it exits) and wait for it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Bucket:
    """One test's bucket on the server."""

    server: S3Server
    name: str
    client: S3Client

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix`, sorted."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        ):
            keys.extend(entry["Key"] for entry in page.get("Contents", []))
        return sorted(keys)

    def env(self, prefix: str = "") -> dict[str, str]:
        """The bot's environment for media in this bucket."""
        url = f"s3://{self.name}/{prefix}".rstrip("/")
        return {
            "MEDIA_URL": url,
            "S3_ENDPOINT_URL": self.server.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the parent closes it (or dies)
    server.stop()


if __name__ == "__main__":
    _serve()
