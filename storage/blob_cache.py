"""A bounded folder of local copies of remote blobs, least recently used evicted first."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path


class BlobCache:
    """Files named by sha256 under `folder` (two-letter fan-out), at most `limit` bytes in all.

    Every file arrives complete by an atomic rename, so a file in the folder is always whole.
    Thread-safe: the index is guarded by a lock; the files themselves are renamed and unlinked,
    never rewritten, so a reader that opened one keeps reading it even if it is evicted.
    """

    def __init__(self, folder: Path, limit: int, keep: Callable[[str], bool]) -> None:
        self.folder = folder
        self.limit = limit
        # Files that must stay (blobs pinned by `adopt`: read again within seconds).
        self._keep = keep
        self._sizes: OrderedDict[str, int] = OrderedDict()  # oldest use first
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Bytes the cached files take."""
        return self._total

    def path(self, sha256: str) -> Path:
        """Where the blob's copy lives (whether or not it is there now)."""
        return self.folder / sha256[:2] / sha256

    def load(self) -> None:
        """Index the copies an earlier run left, oldest use first, and trim to the limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, str, int]] = []
        for sub in self.folder.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.is_file() and len(entry.name) == 64:
                    stat = entry.stat()
                    found.append((stat.st_mtime, entry.name, stat.st_size))
        with self._lock:
            self._sizes.clear()
            self._total = 0
            for _, sha, size in sorted(found):
                self._sizes[sha] = size
                self._total += size
            self._evict(keep=None)

    def touch(self, sha256: str) -> bool:
        """Whether the copy is here; if so it becomes the most recently used."""
        path = self.path(sha256)
        with self._lock:
            if sha256 not in self._sizes:
                return False
            if not path.is_file():  # removed behind our back
                self._total -= self._sizes.pop(sha256)
                return False
            self._sizes.move_to_end(sha256)
        # The mtime orders the copies for the next run's `load`.
        try:
            os.utime(path)
        except OSError:
            pass
        return True

    def add(self, sha256: str, file: Path) -> Path:
        """Move a complete local file in as the blob's copy, then evict beyond the limit."""
        path = self.path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = file.stat().st_size
        os.replace(file, path)
        with self._lock:
            self._total -= self._sizes.pop(sha256, 0)
            self._sizes[sha256] = size
            self._total += size
            self._evict(keep=sha256)
        return path

    def drop(self, sha256: str) -> None:
        """Remove the blob's copy, if any."""
        with self._lock:
            self._total -= self._sizes.pop(sha256, 0)
            self.path(sha256).unlink(missing_ok=True)

    def _evict(self, keep: str | None) -> None:
        # Oldest first; the copy just added and pinned blobs stay even beyond the limit (a
        # caller is about to read them), so one file larger than the limit still works.
        for sha in list(self._sizes):
            if self._total <= self.limit:
                return
            if sha == keep or self._keep(sha):
                continue
            self._total -= self._sizes.pop(sha)
            self.path(sha).unlink(missing_ok=True)
