"""What every benchmark here shares: its processes (start under a death signal, stop),
their CPU and memory from /proc, the nearest-rank percentile, the machine line of a
report, the `main()` of a benchmark (work dir, sandbox, Ctrl-C and SIGTERM, clean-up)
and the `main()` of a bare floor app (arguments, logging, serve until SIGTERM).

Imports only the ARI client of the project, so that the floor apps stay bare.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nohold.ari_apps.ari_client import AriClient, wait_for_application

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc --------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # utime + stime, all threads
    rss_kb: int  # VmRSS
    hwm_kb: int  # VmHWM: peak RSS since the process started


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()  # after "(comm)": state is fields[0]


def sample_process(pid: int) -> ProcSample:
    fields = _stat_fields(pid)
    utime, stime = int(fields[11]), int(fields[12])
    status = Path(f"/proc/{pid}/status").read_text()
    return ProcSample((utime + stime) / CLK_TCK, _status_kb(status, "VmRSS"),
                      _status_kb(status, "VmHWM"))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process, of its children that it has reaped (cutime, cstime)
    and of those still alive (e.g. a PostgreSQL postmaster and its backends)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return math.nan
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _stat_fields(int(entry.name))
        except OSError:
            continue
        if int(child[1]) == pid:  # ppid
            total += int(child[11]) + int(child[12])
    return total / CLK_TCK


def _status_kb(status: str, key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


async def settled_sample(pid: int, quiet: float = 0.5, limit: float = 10.0) -> ProcSample:
    """Sample once the process's CPU time stops moving (late ledger writes, log flushes)."""
    deadline = time.monotonic() + limit
    last = sample_process(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = sample_process(pid)
        if now.cpu_s == last.cpu_s:
            return now
        last = now
    return last


# --- the processes under test ---------------------------------------------------------

@dataclass
class Subject:
    label: str
    app: str  # ARI application name, to know when it is connected
    endpoint: str  # what we originate to reach it
    cmd: list[str]
    env: dict[str, str]
    log_path: Path


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without NOHOLD_* overrides (they would beat the config file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOHOLD_")}
    env.update(extra or {})
    return env


def start_process(subject: Subject) -> subprocess.Popen[bytes]:
    """Start it with its own log; setpriv makes the kernel TERM it if we die (kill -9)."""
    cmd = subject.cmd
    if shutil.which("setpriv"):
        cmd = ["setpriv", "--pdeathsig", "TERM", "--", *cmd]
    with subject.log_path.open("ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=subject.env)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_registered(client: AriClient, subject: Subject,
                          proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    try:
        await wait_for_application(client, subject.app, timeout=timeout,
                                   alive=lambda: proc.poll() is None)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{subject.label}: {exc}; see {subject.log_path}") from None


# --- figures ----------------------------------------------------------------------------

def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def machine_info(asterisk_version: str) -> list[str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"machine: nproc {len(os.sched_getaffinity(0))} ({model}), Linux {platform.release()}",
        f"python {platform.python_version()}, Asterisk {asterisk_version}, clock tick "
        f"{1000 / CLK_TCK:g} ms",
    ]


# --- a benchmark's main() ---------------------------------------------------------------

class Stoppable(Protocol):
    def stop(self) -> None: ...


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the running benchmark like Ctrl-C does; run_bench's clean-up then
    stops everything it started."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def run_bench(prefix: str, keep: bool, start_box: Callable[[], Stoppable],
              bench: Callable[[Any, Path, list[subprocess.Popen[bytes]]],
                             Coroutine[Any, Any, str]]
              ) -> int:
    """A work dir, the sandbox (`start_box`), then `bench(box, work, running)`, whose
    report is printed. Whatever happens, the processes in `running` and the sandbox
    are stopped and the work dir removed (unless `keep`)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    running: list[subprocess.Popen[bytes]] = []
    box = start_box()
    try:
        print(asyncio.run(bench(box, work, running)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("interrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        for proc in running:
            stop_process(proc)
        box.stop()
        if keep:
            print(f"\nwork dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# --- a bare floor app's main() ----------------------------------------------------------

Serve = Callable[[AriClient, argparse.Namespace], Coroutine[Any, Any, None]]


async def serve_until_stopped(url: str, user: str, password: str, app: str,
                              serve: Callable[[AriClient], Coroutine[Any, Any, None]],
                              log: Any) -> None:
    """Connect as `app` and run `serve(client)` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AriClient(url, user, password, app) as client:
        server = asyncio.create_task(serve(client))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({server, stopper}, return_when=asyncio.FIRST_COMPLETED)
        server.cancel()
        stopper.cancel()
    log.info("stopped")


def app_main(doc: str, default_app: str, argv: list[str] | None, serve: Serve, log: Any,
             add_args: Callable[[argparse.ArgumentParser], None] = lambda p: None) -> int:
    """Arguments (--url, --user, --app, and the app's own), logging to stderr, the ARI
    password from BENCH_ARI_PASSWORD (out of `ps`); serves until SIGTERM or SIGINT."""
    import logging

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", required=True, help="ARI base URL, e.g. http://127.0.0.1:8088")
    parser.add_argument("--user", required=True)
    parser.add_argument("--app", default=default_app)
    add_args(parser)
    args = parser.parse_args(argv)
    password = os.environ.get("BENCH_ARI_PASSWORD", "")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    asyncio.run(serve_until_stopped(args.url, args.user, password, args.app,
                                    lambda client: serve(client, args), log))
    return 0
