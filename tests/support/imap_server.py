"""A throw-away IMAP server for the tests: pymap's in-memory backend, in its own process
on a free loopback port. User `demouser`, password `demopass`, an empty INBOX."""

from __future__ import annotations

import imaplib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "demouser", "demopass"


class ImapUnavailable(Exception):
    pass


@dataclass(frozen=True)
class ImapServer:
    host: str
    port: int

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """A mail arrives (APPEND, as a delivery agent would put it)."""
        conn = self.client()
        try:
            typ, data = conn.append(folder, None, None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def mails(self, folder: str) -> list[tuple[bytes, bytes]]:
        """(flags, raw) of every mail in `folder`, oldest first; [] if there is none."""
        conn = self.client()
        try:
            if conn.select(folder, readonly=True)[0] != "OK":
                return []
            typ, data = conn.uid("SEARCH", "ALL")
            out = []
            for uid in (data[0] or b"").split():
                typ, got = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                head, body = got[0]  # type: ignore[misc]
                out.append((head, body))
            return out
        finally:
            conn.logout()


def _pymap() -> str:
    found = shutil.which("pymap") or str(Path(sys.executable).parent / "pymap")
    if not Path(found).exists():
        raise ImapUnavailable("pymap not found: pip install -e '.[test]' (it brings pymap)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def imap_server() -> Iterator[ImapServer]:
    port = _free_port()
    proc = subprocess.Popen([_pymap(), "--host", "127.0.0.1", "--port", str(port),
                             "--no-service", "admin", "dict"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    raise ImapUnavailable(f"pymap did not start: {out[-2000:]}") from None
                time.sleep(0.05)
        yield ImapServer("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
