"""What only the S3 store has: its bucket layout, its local cache, start-up errors, replicas."""

from __future__ import annotations

import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from storage.blob_cache import BlobCache
from storage.blobs import open_blobs
from storage.local_blobs import LocalBlobStore
from storage.maintenance import sweep_orphan_blobs
from storage.records import Blob, Media, MediaFacts, Origin
from storage.s3_blobs import TRANSFER, S3BlobStore, explain
from storage.s3_location import BlobStoreUnavailable, S3Location
from storage.sql import open_sqlite
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, Bucket
from tests.test_blob_store_contract import s3_store


class Calls:
    """The S3 operations a client sent, counted by name (botocore's own event hooks)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.counts: Counter[str] = Counter()
        store.client.meta.events.register("before-call.s3.*", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1


def test_objects_are_named_by_their_hash_under_the_prefix(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = s3_store(s3_bucket, tmp_path, "trips/media/")
    store.prepare()
    sha, _ = store.put_bytes(b"pier")
    assert s3_bucket.keys() == [f"trips/media/{sha[:2]}/{sha}"]
    body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"trips/media/{sha[:2]}/{sha}")
    assert body["Body"].read() == b"pier"


def test_a_new_photo_is_one_request_and_the_same_bytes_again_one_object(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = s3_store(s3_bucket, tmp_path)
    store.prepare()
    calls = Calls(store)
    first, _ = store.put_bytes(b"x" * 10_000)
    assert calls.counts == Counter({"PutObject": 1})  # not asked first whether it is there
    second, _ = store.put_bytes(b"x" * 10_000)
    assert first == second and calls.counts == Counter({"PutObject": 2})
    assert len(s3_bucket.keys()) == 1


def test_a_big_file_the_bucket_has_is_not_uploaded_again(s3_bucket: Bucket, tmp_path: Path) -> None:
    store = s3_store(s3_bucket, tmp_path)
    store.prepare()
    calls = Calls(store)
    big = os.urandom(TRANSFER.multipart_threshold + 1)
    first, _ = store.put_bytes(big)
    uploaded = calls.counts["UploadPart"]
    assert uploaded >= 2 and calls.counts["CompleteMultipartUpload"] == 1
    second, _ = store.put_bytes(big)
    assert first == second and calls.counts["UploadPart"] == uploaded
    assert calls.counts["CompleteMultipartUpload"] == 1 and calls.counts["HeadObject"] == 2


def test_other_keys_and_other_prefixes_are_not_blobs(s3_bucket: Bucket, tmp_path: Path) -> None:
    ours = s3_store(s3_bucket, tmp_path / "a", "ours/")
    theirs = s3_store(s3_bucket, tmp_path / "b", "theirs/")
    ours.prepare()
    theirs.prepare()
    mine, _ = ours.put_bytes(b"mine")
    other, _ = theirs.put_bytes(b"theirs")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="ours/notes.txt", Body=b"x")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=f"ours/zz/{mine}", Body=b"x")
    assert ours.stored() == {mine} and theirs.stored() == {other}


def test_the_cache_stays_within_its_limit_and_fetches_evicted_blobs_again(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = s3_store(s3_bucket, tmp_path, cache_limit=250_000, cache_grace=0)
    store.prepare()
    contents = [os.urandom(100_000) for _ in range(5)]
    shas = []
    for data in contents:
        sha, _ = store.put_bytes(data)
        store.release(sha)
        shas.append(sha)
        assert store.cache.total <= 250_000
    cached = [sha for sha in shas if store.cache.path(sha).is_file()]
    assert cached == shas[-2:], "the least recently used copies went first"
    calls = Calls(store)
    assert store.path_for(shas[0]).read_bytes() == contents[0]  # evicted: downloaded again
    assert store.path_for(shas[0]).read_bytes() == contents[0]  # now cached
    assert calls.counts["GetObject"] == 1
    assert not store.cache.path(shas[3]).is_file(), "the oldest copy made room"
    on_disk = sum(p.stat().st_size for p in (tmp_path / "media-cache").rglob("*") if p.is_file())
    assert on_disk == store.cache.total <= 250_000


def test_pinned_copies_are_not_evicted(s3_bucket: Bucket, tmp_path: Path) -> None:
    store = s3_store(s3_bucket, tmp_path, cache_limit=150_000, cache_grace=0)
    store.prepare()
    pinned, _ = store.put_bytes(os.urandom(100_000))  # about to be read for the model copy
    other, _ = store.put_bytes(os.urandom(100_000))
    assert store.cache.path(pinned).is_file() and store.cache.path(other).is_file()
    store.release(pinned, other)
    third, _ = store.put_bytes(os.urandom(100_000))
    store.release(third)
    assert not store.cache.path(pinned).is_file()


def test_a_new_process_finds_its_cache_again_and_trims_it(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = s3_store(s3_bucket, tmp_path)
    store.prepare()
    shas = [store.put_bytes(os.urandom(100_000))[0] for _ in range(3)]
    store.release(*shas)
    later = s3_store(s3_bucket, tmp_path, cache_limit=250_000, cache_grace=0)
    later.prepare()
    calls = Calls(later)
    assert later.cache.total <= 250_000
    for sha in reversed(shas):
        later.path_for(sha)
    assert calls.counts["GetObject"] == 1  # the two newest copies were kept, the oldest not


def test_another_replica_reads_a_blob_it_did_not_store(s3_bucket: Bucket, tmp_path: Path) -> None:
    first = s3_store(s3_bucket, tmp_path / "one")
    second = s3_store(s3_bucket, tmp_path / "two")
    first.prepare()
    second.prepare()
    sha, _ = first.put_bytes(b"seen by both")
    first.release(sha)
    assert second.exists(sha) and second.path_for(sha).read_bytes() == b"seen by both"
    second.delete(sha)  # the database said no item uses it
    assert not first.exists(sha) and first.stored() == set()


def test_a_missing_bucket_stops_the_start_with_a_sentence(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    location = S3Location(
        "no-such-bucket", "", s3_bucket.server.url, REGION, ACCESS_KEY, SECRET_KEY
    )
    with pytest.raises(BlobStoreUnavailable) as caught:
        S3BlobStore(location, tmp_path).prepare()
    assert str(caught.value) == (
        f"The bucket 'no-such-bucket' at {s3_bucket.server.url} does not exist: create it, or "
        "fix MEDIA_URL."
    )


def test_an_unreachable_endpoint_stops_the_start_with_a_sentence(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    store = S3BlobStore(S3Location("photos", "", url, REGION, ACCESS_KEY, SECRET_KEY), tmp_path)
    with pytest.raises(BlobStoreUnavailable, match="Could not reach the S3 endpoint") as caught:
        store.prepare()
    assert url in str(caught.value) and "S3_ENDPOINT_URL" in str(caught.value)


def test_refused_keys_are_explained_without_the_keys() -> None:
    location = S3Location("photos", "", "http://minio:9000", None, "AKIAEXAMPLE", "s3cr3t")
    refused = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")
    text = explain(refused, location)
    assert "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in text
    assert "s3cr3t" not in text and "AKIAEXAMPLE" not in text


async def test_open_blobs_keeps_the_local_disk_unless_a_bucket_is_given(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    assert isinstance(await open_blobs(tmp_path / "local"), LocalBlobStore)
    location = S3Location(
        s3_bucket.name, "m/", s3_bucket.server.url, REGION, ACCESS_KEY, SECRET_KEY
    )
    blobs = await open_blobs(tmp_path / "s3", location, cache_bytes=1024)
    assert isinstance(blobs, S3BlobStore) and blobs.cache.limit == 1024


async def test_the_start_up_sweep_deletes_orphan_objects_and_keeps_used_ones(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    blobs = s3_store(s3_bucket, tmp_path)
    blobs.prepare()
    storage = await open_sqlite(tmp_path / "db.sqlite3", tmp_path, blobs)
    try:
        used, _ = blobs.put_bytes(b"in an album")
        orphan, _ = blobs.put_bytes(b"stored, never committed")
        blobs.release(used, orphan)
        album = await storage.albums.current(1)
        blob = Blob(used, 11, "image/jpeg")
        media = Media("photo", blob, blob, Origin(file_id="f", file_unique_id="u"), MediaFacts())
        await storage.media.add(album.id, None, media, max_items=10)
        assert await sweep_orphan_blobs(storage) == 0  # both younger than an hour
        assert await sweep_orphan_blobs(storage, now=blobs.modified(orphan) + 7200) == 1
        assert blobs.stored() == {used} and not blobs.cache.path(orphan).exists()
    finally:
        await storage.close()


def test_a_copy_just_handed_out_outlives_the_limit_until_its_grace_is_over(tmp_path: Path) -> None:
    now = [1000.0]
    cache = BlobCache(tmp_path, limit=250, keep=lambda sha: False, grace=60, clock=lambda: now[0])
    cache.load()
    shas = [f"{n:x}" * 64 for n in range(4)]
    for sha in shas:  # 4 x 100 bytes against 250: each is being read by whoever fetched it
        file = tmp_path / "incoming"
        file.write_bytes(b"x" * 100)
        cache.add(sha, file)
        now[0] += 1
    assert all(cache.path(sha).is_file() for sha in shas) and cache.total == 400
    now[0] += 60  # their readers have long opened them
    assert cache.touch(shas[1])
    file = tmp_path / "incoming"
    file.write_bytes(b"y" * 100)
    cache.add("f" * 64, file)
    kept = [sha for sha in [*shas, "f" * 64] if cache.path(sha).is_file()]
    assert kept == [shas[1], "f" * 64] and cache.total == 200


def test_no_keys_anywhere_stops_the_start_with_a_sentence(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for
    store = S3BlobStore(S3Location(s3_bucket.name, "", s3_bucket.server.url, REGION), tmp_path)
    with pytest.raises(BlobStoreUnavailable) as caught:
        store.prepare()
    assert str(caught.value) == (
        f"No S3 keys were found for MEDIA_URL=s3://{s3_bucket.name}: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY."
    )
