"""Media bytes in an S3-compatible bucket, named by sha256, read through a bounded local cache.

boto3, because every BlobStore method is blocking and runs in a worker thread: its client is
thread-safe, and its transfer manager streams `upload_file`/`download_file` through files in
parts (multipart for big videos, several parts at once), so no blob is ever held whole in
memory. An async client (aiobotocore) would buy nothing here and would need its own session
per event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from storage.blob_cache import GRACE, BlobCache
from storage.pins import PinnedBlobs, Pins
from storage.s3_location import BlobStoreUnavailable, S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MB = 1024 * 1024
# Parts of 8 MB, four at a time; downloads queue at most 8 x 256 KB for the disk, so a
# transfer holds a few tens of MB at worst whatever the file's size.
TRANSFER = TransferConfig(
    multipart_threshold=8 * _MB,
    multipart_chunksize=8 * _MB,
    max_concurrency=4,
    io_chunksize=256 * 1024,
    max_io_queue=8,
)
_MISSING = {"404", "NoSuchKey", "NotFound"}


def s3_client(location: S3Location) -> S3Client:
    """A client for the location's endpoint; keys from the location or boto3's usual chain."""
    session = boto3.session.Session(
        aws_access_key_id=location.access_key_id,
        aws_secret_access_key=location.secret_access_key,
        region_name=location.region,
    )
    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
        # MinIO, Ceph, moto and most self-hosted servers want the bucket in the path.
        s3={"addressing_style": "path" if location.endpoint_url else "auto"},
    )
    return session.client("s3", endpoint_url=location.endpoint_url, config=config)


class S3BlobStore(PinnedBlobs):
    """Content-addressed objects `<prefix><sha[:2]>/<sha>`: the same bytes twice are one object.

    Files arrive in a local scratch folder (`new_temp_path`), are hashed and uploaded (a big
    one skipped when the object is already there), then kept as a cached copy, since the
    model's copy is made from them moments later. `path_for` downloads into the cache when the
    copy is gone.

    Pins (`storage.pins`) stop a deletion taking a blob a chat is recording: this process's
    chats, and with `SharedPins` every replica's. Beyond them, a blob is deleted only when no
    item row refers to it, and the start-up sweep leaves objects younger than an hour alone.
    """

    def __init__(
        self,
        location: S3Location,
        data_dir: Path,
        cache_limit: int = 512 * _MB,
        client: S3Client | None = None,
        list_page_size: int = 1000,
        cache_grace: float = GRACE,
        pins: Pins | None = None,
    ) -> None:
        super().__init__(data_dir / "tmp", pins)
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.client = client if client is not None else s3_client(location)
        self.list_page_size = list_page_size
        # The cache asks about pins without this lock (a dict read): it is called with its
        # own lock held, and `delete` takes the two in the other order.
        self.cache = BlobCache(
            data_dir / "media-cache",
            cache_limit,
            keep=self.pins.pinned,
            grace=cache_grace,
        )

    def prepare(self) -> None:
        """Check the bucket answers, clear scratch files a crash left, index the cache."""
        self._clear_scratch()
        self.cache.load()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as e:
            raise BlobStoreUnavailable(explain(e, self.location)) from None

    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        _check(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def _keep(self, temp: Path, sha256: str, size: int) -> None:
        """Upload (a big file only if the bucket lacks its bytes); the file stays as the cached
        copy."""
        if size < TRANSFER.multipart_threshold:
            # One request in this thread: the transfer manager's own threads cost more CPU
            # than the upload of a photo. Not asked first whether the bucket has the bytes: that
            # would be a second request for every new photo and model copy (measured: as long
            # as the upload), to spare the rare repeat one upload of a few hundred KB.
            with temp.open("rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=body)
        elif not self.exists(sha256):
            self.client.upload_file(str(temp), self.bucket, self.key(sha256), Config=TRANSFER)
        self.cache.add(sha256, temp)

    def path_for(self, sha256: str) -> Path:
        """A local path holding the blob, downloaded (streamed, then renamed) if not cached.

        A blob the bucket does not hold gets a path where nothing is, as a local blob that was
        taken back would. Blocking.
        """
        _check(sha256)
        path = self.cache.path(sha256)
        if self.cache.touch(sha256):
            return path
        temp = self.new_temp_path()
        try:
            self.client.download_file(self.bucket, self.key(sha256), str(temp), Config=TRANSFER)
        except ClientError as e:
            temp.unlink(missing_ok=True)
            if _is_missing(e):
                return path
            raise
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return self.cache.add(sha256, temp)

    def exists(self, sha256: str) -> bool:
        """Whether the bucket holds the blob."""
        return self._head(sha256) is not None

    def _remove(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        self.cache.drop(sha256)

    def modified(self, sha256: str) -> float:
        """When the object was written (seconds since the epoch; 0 if absent)."""
        when = self._head(sha256)
        return 0.0 if when is None else when

    def stored(self) -> set[str]:
        """The hashes of every blob under the prefix (listed page by page). Blocking."""
        found: set[str] = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.prefix,
            PaginationConfig={"PageSize": self.list_page_size},
        )
        for page in pages:
            for entry in page.get("Contents", []):
                key = entry.get("Key", "")
                name = key.rsplit("/", 1)[-1]
                if _is_sha(name) and key == f"{self.prefix}{name[:2]}/{name}":
                    found.add(name)
        return found

    def _head(self, sha256: str) -> float | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as e:
            if _is_missing(e):
                return None
            raise
        return head["LastModified"].timestamp()


def explain(error: BaseException, location: S3Location) -> str:
    """One sentence saying what to fix when the bucket cannot be used."""
    where = f"at {location.endpoint_url}" if location.endpoint_url else "on AWS"
    if isinstance(error, NoCredentialsError):
        return (
            f"No S3 keys were found for MEDIA_URL={location.url}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY."
        )
    if isinstance(error, EndpointConnectionError):
        return (
            f"Could not reach the S3 endpoint {where} for MEDIA_URL={location.url}: check "
            "S3_ENDPOINT_URL (or AWS_ENDPOINT_URL) and that the server is up."
        )
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return (
                f"The bucket '{location.bucket}' {where} does not exist: create it, or fix "
                "MEDIA_URL."
            )
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return (
                f"The S3 server {where} refused the keys for bucket '{location.bucket}' "
                f"({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they "
                "may read and write that bucket."
            )
        if code == "301" or code == "PermanentRedirect":
            return (
                f"The bucket '{location.bucket}' is in another region: set AWS_REGION to the "
                "bucket's region."
            )
        return f"The S3 bucket '{location.bucket}' {where} cannot be used ({code or error})."
    return f"The S3 bucket '{location.bucket}' {where} cannot be used ({error})."


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING


def _is_sha(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _check(sha256: str) -> None:
    if not _is_sha(sha256):
        raise ValueError("not a sha256 hex digest")
