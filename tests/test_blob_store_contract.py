"""What every BlobStore must do, run against the local disk and an S3 bucket (moto, loopback).

Only the `BlobStore` protocol is used here, so a new store is a new entry in `subject`, not a
copy of these tests.
"""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.local_blobs import LocalBlobStore
from storage.protocols import BlobStore
from storage.s3_blobs import S3BlobStore
from storage.s3_location import S3Location
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, Bucket

CACHE_LIMIT = 256 * 1024  # small, so the S3 store's cache evicts all the time in these tests
MB = 1024 * 1024


@dataclass
class Subject:
    """A store under test, and how to make it forget its local copies (S3: the cache)."""

    blobs: BlobStore
    forget_local_copies: Callable[[], None]
    data_dir: Path


def s3_store(bucket: Bucket, data_dir: Path, prefix: str = "", **options: float) -> S3BlobStore:
    """An S3BlobStore on the test server's bucket, as `open_blobs` would build it."""
    location = S3Location(
        bucket=bucket.name,
        prefix=prefix,
        endpoint_url=bucket.server.url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    return S3BlobStore(location, data_dir, **options)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "s3"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    data_dir = tmp_path / "data"
    if request.param == "local":
        local = LocalBlobStore(data_dir)
        local.prepare()
        yield Subject(local, lambda: None, data_dir)
        return
    bucket: Bucket = request.getfixturevalue("s3_bucket")
    s3 = s3_store(
        bucket, data_dir, "media/", cache_limit=CACHE_LIMIT, cache_grace=0, list_page_size=7
    )
    s3.prepare()

    def forget() -> None:
        for sha in s3.stored():
            s3.cache.drop(sha)

    yield Subject(s3, forget, data_dir)


def scratch_file(blobs: BlobStore, data: bytes, suffix: str = "") -> Path:
    temp = blobs.new_temp_path(suffix)
    temp.write_bytes(data)
    return temp


def sha_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_same_bytes_stored_twice_are_one_blob(subject: Subject) -> None:
    blobs = subject.blobs
    first = blobs.put_bytes(b"the pier at dusk")
    second = blobs.adopt(scratch_file(blobs, b"the pier at dusk", ".jpg"))
    assert first == second == (sha_of(b"the pier at dusk"), 16)
    assert blobs.stored() == {first[0]}
    blobs.release(first[0], second[0])


def test_an_adopted_scratch_file_moves_in_and_reads_back(subject: Subject) -> None:
    blobs = subject.blobs
    temp = scratch_file(blobs, b"from a download", ".mp4")
    sha, size = blobs.adopt(temp)
    blobs.release(sha)
    assert not temp.exists() and size == 15
    subject.forget_local_copies()
    assert blobs.exists(sha) and blobs.path_for(sha).read_bytes() == b"from a download"
    now = time.time()
    assert now - 3600 < blobs.modified(sha) < now + 3600


def test_a_pinned_blob_survives_delete_until_every_pin_is_released(subject: Subject) -> None:
    blobs = subject.blobs
    sha, _ = blobs.put_bytes(b"photo")  # one chat stores it...
    again, _ = blobs.put_bytes(b"photo")  # ...and another the same bytes
    blobs.delete(sha)
    assert blobs.exists(sha)
    blobs.release(sha)
    blobs.delete(sha)
    assert blobs.exists(sha), "the second chat's pin still holds it"
    blobs.release(again)
    blobs.delete(sha)
    assert not blobs.exists(sha) and sha not in blobs.stored()
    assert not blobs.path_for(sha).is_file()


def test_a_missing_blob_is_no_error(subject: Subject) -> None:
    blobs = subject.blobs
    missing = sha_of(b"never stored")
    blobs.delete(missing)
    assert not blobs.exists(missing) and blobs.modified(missing) == 0
    assert not blobs.path_for(missing).is_file()
    with pytest.raises(ValueError):
        blobs.path_for("../../etc/passwd")


def test_stored_lists_every_blob(subject: Subject) -> None:
    blobs = subject.blobs
    shas = {blobs.put_bytes(f"photo {n}".encode())[0] for n in range(40)}  # pages of 7 on S3
    blobs.release(*shas)
    assert blobs.stored() == shas
    for sha in sorted(shas)[:5]:
        blobs.delete(sha)
    assert blobs.stored() == set(sorted(shas)[5:])


def test_prepare_clears_scratch_files_and_keeps_blobs(subject: Subject) -> None:
    blobs = subject.blobs
    sha, _ = blobs.put_bytes(b"kept")
    blobs.release(sha)
    leftover = scratch_file(blobs, b"half a download")
    blobs.prepare()
    assert not leftover.exists()
    assert blobs.path_for(sha).read_bytes() == b"kept"


def test_blobs_larger_than_the_local_cache_still_read_back_right(subject: Subject) -> None:
    blobs = subject.blobs
    contents = [os.urandom(100_000) for _ in range(8)]  # 800 KB against a 256 KB cache
    shas = [blobs.put_bytes(data)[0] for data in contents]
    blobs.release(*shas)
    for _ in range(2):
        for sha, data in zip(shas, contents, strict=True):
            assert blobs.path_for(sha).read_bytes() == data
    for sha, data in reversed(list(zip(shas, contents, strict=True))):
        assert hashlib.sha256(blobs.path_for(sha).read_bytes()).hexdigest() == sha_of(data)


def test_a_large_video_round_trips_without_being_held_in_memory(subject: Subject) -> None:
    blobs = subject.blobs
    size = 20 * MB
    temp = blobs.new_temp_path(".mp4")
    digest = hashlib.sha256()
    with temp.open("wb") as f:
        for _ in range(size // MB):
            chunk = os.urandom(MB)
            digest.update(chunk)
            f.write(chunk)
    tracemalloc.start()
    try:
        sha, stored_size = blobs.adopt(temp)
        blobs.release(sha)
        subject.forget_local_copies()
        path = blobs.path_for(sha)
        read_back = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(MB):
                read_back.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (sha, stored_size) == (digest.hexdigest(), size)
    assert read_back.hexdigest() == sha
    # Streaming costs about a megabyte per part in flight (S3: four at a time), whatever the
    # file's size; reading the file whole would cost all 20 MB.
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB of Python memory for a 20 MB file"
