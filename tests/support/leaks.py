"""What a test may not leave behind: child processes, TCP connections to Asterisk,
asyncio tasks. Each check names what leaked, so the failing test is the culprit.

Why: the test bed once wedged Asterisk's ARI for the rest of a run (see
docs/decisions/0004-no-subscribeall.md); leaked sockets and tasks are how a test
quietly changes what the next one meets.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path

from nohold.sandbox import Sandbox


def child_processes() -> dict[int, str]:
    """Live (non-zombie) children of this process: pid -> command line."""
    me = os.getpid()
    found: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found[int(stat.parent.name)] = cmd
    return found


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_rows() -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        rows += [line.split() for line in lines]
    return rows


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


ESTABLISHED = "01"


def own_connections_to(ports: set[int]) -> int:
    """Established TCP connections of this process to any of `ports`."""
    mine = _own_socket_inodes()
    return sum(1 for row in _tcp_rows()
               if row[3] == ESTABLISHED and _port(row[2]) in ports and row[9] in mine)


def server_sessions(port: int) -> int:
    """Established connections that a server on `port` holds, from any client."""
    return sum(1 for row in _tcp_rows() if row[3] == ESTABLISHED and _port(row[1]) == port)


async def pending_tasks(grace: float = 1.0) -> list[asyncio.Task[object]]:
    """Tasks of the running loop other than the caller that have not ended within
    `grace` seconds (a cancelled task needs a turn of the loop to finish)."""
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if others:
        await asyncio.wait(others, timeout=grace)
    return [t for t in others if not t.done()]


def wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll a condition that settles by itself (a peer closing its side)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


class AriWatchdog:
    """Fails the whole run fast, naming the wedged resource, when the session's
    Asterisk stops answering ARI: better than every later test waiting out its
    timeouts until CI's limit.

    A daemon thread asks `GET /ari/applications` (the request the known ARI
    deadlock blocks first) every `every` seconds; `misses` unanswered probes in a
    row interrupt the main thread with the diagnosis.
    """

    def __init__(self, box: Sandbox, every: float = 10.0, timeout: float = 10.0,
                 misses: int = 3, on_wedge: Callable[[], None] | None = None) -> None:
        self.box, self.every, self.timeout, self.misses = box, every, timeout, misses
        self.on_wedge = on_wedge or self._wedged
        self.verdict: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ari-watchdog", daemon=True)

    def start(self) -> AriWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 1)

    def probe(self) -> str | None:
        """None when ARI answers, else what went wrong."""
        req = urllib.request.Request(f"{self.box.ari_url}/ari/applications")
        token = b64encode(f"{self.box.ari_user}:{self.box.ari_password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
            return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except OSError as exc:
            return repr(exc)

    def _wedged(self) -> None:
        assert self.verdict is not None
        VERDICTS.append(self.verdict)
        print(f"\n{self.verdict}", file=sys.__stderr__, flush=True)
        _thread.interrupt_main()

    def _run(self) -> None:
        missed: list[str] = []
        while not self._stop.wait(self.every):
            if not self.box.is_running():
                return  # stopped or restarted by its owner: not a wedge
            problem = self.probe()
            missed = missed + [problem] if problem else []
            if len(missed) >= self.misses:
                self.verdict = self.diagnose(missed)
                self.on_wedge()
                return

    def diagnose(self, missed: list[str]) -> str:
        try:
            threads = len(os.listdir(f"/proc/{self.box.pid}/task"))
        except OSError:
            threads = -1
        return (
            f"WEDGED: sandbox Asterisk {self.box.name!r} (pid {self.box.pid}): ARI "
            f"GET /ari/applications on 127.0.0.1:{self.box.http_port} unanswered "
            f"{len(missed)} times in a row ({', '.join(missed)}); Asterisk threads: "
            f"{threads}; HTTP sessions held: {server_sessions(self.box.http_port)}. "
            "Stopping the run instead of letting every later test time out. Known cause: "
            "a subscribeAll socket closed during a device state change "
            "(asterisk#2170, docs/decisions/0004-no-subscribeall.md).\n"
            f"messages.log tail:\n{self.box.log_tail(30)}"
        )


VERDICTS: list[str] = []
"""Every wedge a watchdog found in this run: printed in the run's summary."""
