"""Where a bucket of media is (MEDIA_URL), apart from the S3 client: boto3 takes a third of a
second to import, and a bot that keeps its media on disk never needs it."""

from __future__ import annotations

from dataclasses import dataclass


class BlobStoreUnavailable(Exception):
    """The media store cannot be used as configured; the message says what to fix."""


@dataclass(frozen=True)
class S3Location:
    """Where the blobs live: a bucket, a key prefix ('' or ending in '/'), an endpoint."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # None: AWS itself
    region: str | None = None
    access_key_id: str | None = None  # None: boto3's usual chain (environment, files, role)
    secret_access_key: str | None = None

    @property
    def url(self) -> str:
        """The MEDIA_URL this location came from (no secrets in it)."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
