"""A bounded folder of local copies of remote blobs, least recently used evicted first."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GRACE = 60.0  # seconds a copy just handed out stays, whatever the limit


@dataclass
class _Entry:
    size: int
    used: float  # monotonic time of the last hand-out


class BlobCache:
    """Files named by sha256 under `folder` (two-letter fan-out), about `limit` bytes in all.

    Every file arrives complete by an atomic rename, so a file in the folder is always whole.
    Beyond the limit the least recently used copies go, except pinned blobs', the one just
    added and copies handed out in the last `grace` seconds: a caller that got a path must
    still find the file when it opens it (once open, an unlinked file reads on). So the folder
    can pass the limit by what is being read at that moment; the next copy added after they
    aged trims it back.
    Thread-safe: the index is guarded by a lock; files are renamed in and unlinked, never
    rewritten.
    """

    def __init__(
        self,
        folder: Path,
        limit: int,
        keep: Callable[[str], bool],
        grace: float = GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.limit = limit
        self.grace = grace
        # Blobs pinned by `adopt`: their copy is read again within seconds.
        self._keep = keep
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
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
            self._entries.clear()
            self._total = 0
            for _, sha, size in sorted(found):
                self._entries[sha] = _Entry(size, used=-float("inf"))  # nobody is reading them
                self._total += size
            self._evict()

    def touch(self, sha256: str) -> bool:
        """Whether the copy is here; if so it is handed out (most recently used now)."""
        path = self.path(sha256)
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is None:
                return False
            if not path.is_file():  # removed behind our back
                del self._entries[sha256]
                self._total -= entry.size
                return False
            entry.used = self._clock()
            self._entries.move_to_end(sha256)
        # The mtime orders the copies for the next run's `load`.
        try:
            os.utime(path)
        except OSError:
            pass
        return True

    def add(self, sha256: str, file: Path) -> Path:
        """Move a complete local file in as the blob's copy (handed out), then trim."""
        path = self.path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = file.stat().st_size
        os.replace(file, path)
        with self._lock:
            old = self._entries.pop(sha256, None)
            if old is not None:
                self._total -= old.size
            self._entries[sha256] = _Entry(size, used=self._clock())
            self._total += size
            self._evict(keep=sha256)
        return path

    def drop(self, sha256: str) -> None:
        """Remove the blob's copy, if any."""
        with self._lock:
            entry = self._entries.pop(sha256, None)
            if entry is not None:
                self._total -= entry.size
            self.path(sha256).unlink(missing_ok=True)

    def _evict(self, keep: str | None = None) -> None:
        recent = self._clock() - self.grace
        for sha, entry in list(self._entries.items()):
            if self._total <= self.limit:
                return
            if sha == keep or entry.used > recent or self._keep(sha):
                continue
            del self._entries[sha]
            self._total -= entry.size
            self.path(sha).unlink(missing_ok=True)
