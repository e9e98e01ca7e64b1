"""A real PostgreSQL server for the records tests, from Debian's `postgresql` package: initialised in a
temporary folder, listening on 127.0.0.1 on a free port, stopped and removed afterwards. PostgreSQL refuses to
run as root: as root, its folder belongs to the `postgres` user and its commands run as that user."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "anomalens"


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server(port: int) -> Iterator[str]:
    """Yields the server's base URL (no database): postgresql+psycopg://anomalens@127.0.0.1:PORT/."""
    bin_dir = postgres_bin()
    assert bin_dir is not None, "Debian's postgresql package is not installed"
    root = Path(tempfile.mkdtemp(prefix="anomalens-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
        root.chmod(0o755)
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "server.log"

    def run(*command: str) -> None:
        done = subprocess.run([*as_postgres, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}{tail}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; its URL."""
    import psycopg

    host_port = server_url.split("@", 1)[1].rstrip("/")
    host, port = host_port.split(":")
    name = f"records_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=host, port=int(port), user=USER, dbname="postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # a name made here, never given
    return server_url + name
