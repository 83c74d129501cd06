"""A throwaway PostgreSQL server for the tests: Debian's server binaries, `initdb -A trust`
into a temporary directory, a free port on 127.0.0.1.

PostgreSQL refuses to run as root; when the tests run as root the server runs as the
unprivileged `postgres` user (setpriv), in a directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

DEBIAN_BIN = Path("/usr/lib/postgresql")


def server_binaries() -> Path:
    """The directory holding initdb and pg_ctl: $KB_PG_BIN, Debian's newest, or PATH."""
    if os.environ.get("KB_PG_BIN"):
        return Path(os.environ["KB_PG_BIN"])
    versions = sorted(
        (p for p in DEBIAN_BIN.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError(
        "PostgreSQL's server binaries are missing: `apt-get install postgresql` "
        "(.ci/run does it), or point KB_PG_BIN at the directory holding initdb"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Postgres:
    """One PostgreSQL server; `url(database)` and `dsn(database)` reach it as user kb."""

    user = "kb"

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="kb-postgres-"))
        self.data = self.directory / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root: run them as `postgres`
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
            ]

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> Self:
        self._run(
            str(self.bin / "initdb"),
            "-A",
            "trust",
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
            str(self.data),
        )
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )
        return self

    def create_database(self, name: str) -> str:
        """A new database; returns its libpq connection string."""
        self._run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "kb", name
        )
        return self.dsn(name)

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
