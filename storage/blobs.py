"""Media bytes on disk under DATA_DIR/media, named by the sha256 of their content."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

CHUNK = 1024 * 1024


class BlobStore:
    """Content-addressed files: writing the same bytes twice keeps one file.

    Files arrive in a scratch folder first (`new_temp_path`), are hashed there and then renamed
    into place, so a file under media/ is always complete: a crash leaves at most a scratch file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.media = root / "media"
        self.scratch = root / "tmp"

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
        target = self.path_for(sha)
        if target.is_file():
            temp.unlink(missing_ok=True)
            return sha, size
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)
        _fsync_dir(target.parent)
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store bytes (small derived files such as the model's JPEG). Blocking."""
        temp = self.new_temp_path()
        with temp.open("wb") as f:
            f.write(data)
        return self.adopt(temp)

    def delete(self, sha256: str) -> None:
        """Remove a blob's file if present."""
        self.path_for(sha256).unlink(missing_ok=True)

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
