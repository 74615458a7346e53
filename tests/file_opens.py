"""Which files the process opens, as Linux's inotify reports them: a test can tell that a
file was never read without wrapping the code that reads it or sampling memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from collections.abc import Iterable
from pathlib import Path

IN_OPEN = 0x20
IN_NONBLOCK = os.O_NONBLOCK
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded


class FileOpens:
    """Records every open of a file in the folders of `paths` from now until `close`.

    The kernel queues the events, so reading them after the work is done misses none."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = self._libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._folders: dict[int, Path] = {}
        for folder in {p.parent for p in paths}:
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            self._folders[wd] = folder
        self._opened: list[Path] = []

    def opened(self) -> list[Path]:
        """Every file opened so far, once per open, in order."""
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return list(self._opened)
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + length].rstrip(b"\0")
                if name:
                    self._opened.append(self._folders[wd] / os.fsdecode(name))
                offset = start + length

    def close(self) -> None:
        """Stop watching."""
        os.close(self._fd)
