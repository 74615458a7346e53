"""Media bytes on the local disk under DATA_DIR/media, named by the sha256 of their content."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

from storage.pins import Pins

CHUNK = 1024 * 1024


class LocalBlobStore:
    """Content-addressed files: writing the same bytes twice keeps one file.

    Files arrive in a scratch folder first (`new_temp_path`), are hashed there and then renamed
    into place, so a file under media/ is always complete: a crash leaves at most a scratch file.
    """

    def __init__(self, root: Path, pins: Pins | None = None) -> None:
        self.root = root
        self.media = root / "media"
        self.scratch = root / "tmp"
        # Blobs stored whose row is not committed yet: `delete` leaves them alone, so a file
        # another chat is about to record is not removed for being unused a moment earlier.
        self.pins = pins if pins is not None else Pins()
        # Held by `delete` from its look at the pins to the unlink, and by `adopt` from its
        # look at the file to the rename: a file is never both found present and then removed.
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Create the folders and clear scratch files left by a crash."""
        self.media.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        for leftover in self.scratch.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)

    def new_temp_path(self, suffix: str = "") -> Path:
        """A fresh scratch path to download or write into."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch / f"{uuid.uuid4().hex}{suffix}"

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this hash lives."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.media / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the blob is on disk."""
        return self.path_for(sha256).is_file()

    def adopt(self, temp: Path) -> tuple[str, int]:
        """Hash a scratch file, move it into the store (durably) and return (sha256, size).

        The blob stays pinned (see `release`) until the caller has recorded or given it up.
        Blocking: call it in a thread.
        """
        digest = hashlib.sha256()
        size = 0
        with temp.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
            os.fsync(f.fileno())
        sha = digest.hexdigest()
        self.pins.pin(sha)
        target = self.path_for(sha)
        with self._lock:
            present = target.is_file()
            if not present:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, target)
        if present:
            temp.unlink(missing_ok=True)
        else:
            _fsync_dir(target.parent)
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes (small derived files such as the model's JPEG). Blocking."""
        temp = self.new_temp_path()
        with temp.open("wb") as f:
            f.write(data)
        return self.adopt(temp)

    def release(self, *shas: str) -> None:
        """The blobs `adopt` gave are recorded (or given up): `delete` may remove them again."""
        self.pins.release(*shas)

    def delete(self, sha256: str) -> None:
        """Remove a blob's file if present, unless it is on its way into some row (see
        `storage.pins.delete_unused`, which also keeps it from other replicas)."""
        with self._lock:
            if not self.pins.may_delete(sha256):
                return
            self.path_for(sha256).unlink(missing_ok=True)

    def modified(self, sha256: str) -> float:
        """When the blob's file was last written (seconds since the epoch; 0 if absent)."""
        try:
            return self.path_for(sha256).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def stored(self) -> set[str]:
        """The hashes of every blob file on disk. Blocking."""
        return {
            path.name
            for folder in self.media.iterdir()
            if folder.is_dir()
            for path in folder.iterdir()
            if path.is_file() and len(path.name) == 64
        }


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: the directory entry must reach the disk too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
