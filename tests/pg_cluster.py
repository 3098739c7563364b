"""A throwaway PostgreSQL cluster for the tests: initdb in a temp folder, pg_ctl on a free
port, no system service. Debian's ``postgresql`` package provides the binaries
(``make postgres`` installs it); initdb refuses to run as root, so as root the cluster
belongs to the ``postgres`` user (``runuser -u postgres --``)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.api.conftest import free_port

MISSING = (
    "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): the PostgreSQL queue "
    "tests did NOT run. Install them with `make postgres` (apt-get install postgresql)."
)


def server_bin_dir() -> Path | None:
    """The newest installed server's bin folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        # Not under pytest's tmp folder: as root that one is closed to the postgres user.
        self.dir = Path(tempfile.mkdtemp(prefix="easel-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        if self.as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        completed = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if completed.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout}{completed.stderr}{log}")

    def start(self) -> Cluster:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        # fsync off: a test cluster is thrown away; it does not change what a transaction sees
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh empty database's URL (one per test: no state leaks between tests)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
