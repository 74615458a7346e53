"""Media bytes on the local disk under DATA_DIR/media, named by the sha256 of their content."""

from __future__ import annotations

import os
from pathlib import Path

from storage.pins import PinnedBlobs, Pins, hash_file


class LocalBlobStore(PinnedBlobs):
    """Content-addressed files: writing the same bytes twice keeps one file.

    Files arrive in a scratch folder first (`new_temp_path`), are hashed there and then renamed
    into place, so a file under media/ is always complete: a crash leaves at most a scratch file.
    """

    def __init__(self, root: Path, pins: Pins | None = None) -> None:
        super().__init__(root / "tmp", pins)
        self.root = root
        self.media = root / "media"

    def prepare(self) -> None:
        """Create the folders and clear scratch files left by a crash."""
        self.media.mkdir(parents=True, exist_ok=True)
        self._clear_scratch()

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this hash lives."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.media / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the blob is on disk."""
        return self.path_for(sha256).is_file()

    def _hash(self, temp: Path) -> tuple[str, int]:
        return hash_file(temp, durable=True)

    def _keep(self, temp: Path, sha256: str, size: int) -> None:
        target = self.path_for(sha256)
        if target.is_file():
            temp.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)
        _fsync_dir(target.parent)

    def _remove(self, sha256: str) -> None:
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
