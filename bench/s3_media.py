"""`python -m bench.s3_media [MB]`: memory of storing and reading back a video through S3.

Starts moto's S3 server on loopback (a child process, so its memory is not counted), adopts a
video of MB megabytes (default 20) into an S3BlobStore, empties the local cache and reads the
video back through `path_for`. Prints this process's peak Python allocations (tracemalloc) and
its RSS growth (psutil) for each step; a store holding the file in memory would show its size.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import psutil

from storage.s3_blobs import S3BlobStore
from storage.s3_location import S3Location
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server

MB = 1024 * 1024


def main(argv: list[str]) -> int:
    """Run the measurement and print one line per step."""
    size = int(argv[0]) * MB if argv else 20 * MB
    server = S3Server()
    try:
        bucket = server.new_bucket()
        with tempfile.TemporaryDirectory() as folder:
            location = S3Location(bucket.name, "", server.url, REGION, ACCESS_KEY, SECRET_KEY)
            store = S3BlobStore(location, Path(folder), cache_limit=64 * MB)
            store.prepare()
            warm, _ = store.put_bytes(b"warm-up: clients, threads, service model")
            store.release(warm)
            temp = store.new_temp_path(".mp4")
            with temp.open("wb") as f:
                for _ in range(size // MB):
                    f.write(os.urandom(MB))
            process = psutil.Process()
            print(f"video: {size / MB:.0f} MB; parts of 8 MB, 4 at a time")
            tracemalloc.start()
            rss = process.memory_info().rss
            started = time.perf_counter()
            sha, _ = store.adopt(temp)
            store.release(sha)
            _report("adopt (hash + upload)", started, rss, process)
            store.cache.drop(sha)
            tracemalloc.reset_peak()
            rss = process.memory_info().rss
            started = time.perf_counter()
            path = store.path_for(sha)
            _report("path_for (download)", started, rss, process)
            tracemalloc.stop()
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(MB):
                    digest.update(chunk)
            print(f"read back intact: {digest.hexdigest() == sha}")
    finally:
        server.stop()
    return 0


def _report(step: str, started: float, rss_before: int, process: psutil.Process) -> None:
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    grown = process.memory_info().rss - rss_before
    print(f"{step:24} peak Python {peak / MB:5.1f} MB, RSS +{grown / MB:5.1f} MB, {seconds:.2f} s")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
