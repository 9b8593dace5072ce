"""A throwaway PostgreSQL server for the tests: Debian's PostgreSQL 15 binaries, initdb'd into a temporary folder,
listening only on a Unix socket there, run as an unprivileged user when the tests run as root (PostgreSQL refuses
root). Each test gets its own database."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

BIN = Path(os.environ.get("FEEDER_PG_BIN", "/usr/lib/postgresql/15/bin"))
_numbers = itertools.count(1)


def missing() -> str | None:
    """Why no server can be started here, or None."""
    absent = [name for name in ("initdb", "pg_ctl", "postgres") if not (BIN / name).exists()]
    return f"PostgreSQL server binaries missing in {BIN}: {', '.join(absent)}" if absent else None


@dataclass(frozen=True)
class Server:
    """A running server: its folder (data/, the socket, log) and the user it runs as."""

    root: Path
    user: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://feeder@/{database}?host={self.root}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"test_{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def pause(self) -> None:
        """Stop the server (fast shutdown: clients are cut off) and keep its data for ``resume``."""
        self._run(str(BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start again a server ``pause`` stopped: same data, same socket."""
        self._start()

    def _start(self) -> None:
        options = f"-c listen_addresses='' -c unix_socket_directories={self.root} -c fsync=off -c full_page_writes=off"
        log = str(self.root / "log")
        self._run(str(BIN / "pg_ctl"), "-D", str(self.root / "data"), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}{tail}")


def start() -> Server:
    """initdb and start a server in a new temporary folder."""
    user = "nobody" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="feeder-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = Server(root, user)
    data = str(root / "data")
    server._run(str(BIN / "initdb"), "-D", data, "-U", "feeder", "--auth=trust", "-E", "UTF8", "--locale=C")
    server._start()
    return server
