"""A throw-away PostgreSQL server from Debian's `postgresql` package, started by the tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PostgresUnavailable(Exception):
    pass


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable("initdb not found: install the Debian package postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a postgresql:// URL to an empty database; the server is gone afterwards."""
    bindir = _bin_dir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; Debian's package creates this user.
        pw = pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="nohold-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "nohold",
                        "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
             "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off",
             "start"], check=True, capture_output=True)
        yield f"postgresql://nohold@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        raise PostgresUnavailable(f"{exc.cmd[len(as_user)]} failed: {exc.stderr!r} {log}") from exc
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


async def empty_database(url: str) -> None:
    """Everything the migrations made is gone (the whole public schema, so a new
    migration's table needs no list kept by hand): the next `db upgrade` starts afresh."""
    from sqlalchemy import text

    from nohold.callbackdb.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()
