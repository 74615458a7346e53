"""A throwaway PostgreSQL server on loopback for the tests: initdb in a temp dir, pg_ctl start.

Started once per test session, on first use; each test gets a database of its own. As root
(here and in CI) the server runs as the `postgres` system user, since initdb and postgres
refuse root. A machine without the server binaries fails the tests that need it (install them
with scripts/test-system-deps); it never skips them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

_ADMIN_USER = "postgres"


def _bindir() -> Path:
    """Where initdb, pg_ctl and postgres are: pg_config's word, else Debian's folders."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        candidates.append(found)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file():
            return Path(folder)
    raise RuntimeError(
        "No PostgreSQL server binaries (initdb, pg_ctl) found; the PostgreSQL tests need them. "
        "Install them with scripts/test-system-deps (Debian: apt-get install postgresql)."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temp dir, listening on 127.0.0.1 and a socket beside it."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="photostory-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, check=False, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> PgServer:
        """initdb, then pg_ctl start (which waits until the server accepts connections)."""
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", _ADMIN_USER,
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        # Durability is no concern for a throwaway cluster: fsync off keeps CREATE DATABASE fast.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server and remove its files."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The postgresql:// address of one database, over TCP on loopback."""
        return f"postgresql://{_ADMIN_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its address."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


_shared: PgServer | None = None


def shared() -> PgServer:
    """The session's server, started on first use."""
    global _shared
    if _shared is None:
        server = PgServer()
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        _shared = server
    return _shared


def stop_shared() -> None:
    """Stop the session's server if one was started."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
