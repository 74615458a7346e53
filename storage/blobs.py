"""Which store holds the media bytes: the local disk, or an S3-compatible bucket (MEDIA_URL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.local_blobs import LocalBlobStore
from storage.pins import Pins, SharedPins
from storage.protocols import BlobStore
from storage.s3_location import BlobStoreUnavailable, S3Location

DEFAULT_CACHE_BYTES = 512 * 1024 * 1024


async def open_blobs(
    data_dir: Path,
    s3: S3Location | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    database_url: str | None = None,
) -> BlobStore:
    """The media store, prepared: files under `data_dir/media`, or objects in the bucket `s3`
    with local copies under `data_dir/media-cache`. With `database_url` (replicas on one
    PostgreSQL) its pins are seen by every replica. Raises BlobStoreUnavailable with a sentence
    saying what to fix when the bucket cannot be used."""
    pins = SharedPins(database_url) if database_url else Pins()
    blobs: BlobStore
    if s3 is None:
        blobs = LocalBlobStore(data_dir, pins)
    else:
        from storage.s3_blobs import S3BlobStore  # boto3: imported only for a bucket

        blobs = S3BlobStore(s3, data_dir, cache_limit=cache_bytes, pins=pins)
    await asyncio.to_thread(blobs.prepare)
    return blobs


__all__ = ["DEFAULT_CACHE_BYTES", "BlobStoreUnavailable", "S3Location", "open_blobs"]
