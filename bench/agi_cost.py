"""What does an AGI step cost a call? Classic AGI vs FastAGI vs a bare FastAGI floor.

Prints figures, asserts nothing. Against a private sandbox Asterisk 22, one after the
other, the same dialplan shape per call:

    exten => s,1,Answer()
     same => n,UserEvent(BenchAgi,step: before)
     same => n,AGI(<subject>)        ; nohold: claims the notice and plays it
     same => n,UserEvent(BenchAgi,step: mid,notice: ${NOHOLD_NOTICE})
     same => n,AGI(<subject>)        ; nohold: the call has heard it: skips
     same => n,UserEvent(BenchAgi,step: after,notice: ${NOHOLD_NOTICE})
     same => n,Hangup()

- floor:   bench/bare_fastagi.py, panoramisk's FastAGI server with a route that sends
           one command and returns: `AGI(agi://127.0.0.1:<port>/floor)`;
- fastagi: `nohold run`'s FastAGI `notice_once` (SQLite, the ARI proof of the channel);
- classic: `AGI(nohold-agi,-c,<config>,notice_once)`, a process per AGI step (the
           sandbox's agi-bin script runs it with this Python, nohold/sandbox/instance.py).

The notice is a 0.1 s file (`[prompts.files] bench_notice`), so the steps measure the
AGI, not a recording. Durations are Asterisk's own: the ARI `timestamp`s (ms) of the
UserEvents around each AGI step, seen by one observer app. CPU from /proc: the
subject's process (floor, `nohold run`) and Asterisk's reaped children (classic: the
`nohold-agi` processes) and Asterisk itself, over the measured calls.

    .venv/bin/python bench/agi_cost.py --calls 20
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import (
    Subject,
    cancel_on_sigterm,
    clean_env,
    machine_info,
    percentile,
    run_bench,
    start_process,
    wait_registered,
)

from nohold.ari_apps.ari_client import CONNECTED_EVENT, AriClient, AriError, AriNotFound
from nohold.prompts import build_prompts
from nohold.registry import load_settings
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ALL_CHANNELS_AND_BRIDGES
from nohold.sandbox.nohold_config import write_sandbox_config

BENCH_DIR = Path(__file__).resolve().parent
OBSERVER_APP = "bench-agi-observer"
NOTICE_SECONDS = 0.1
CALL_TIMEOUT = 20.0  # s from originate to the call's end before it counts as failed
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cpu:
    own_s: float  # utime + stime
    children_s: float  # cutime + cstime: children it has waited for


def cpu_of(pid: int) -> Cpu:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return Cpu((int(fields[11]) + int(fields[12])) / CLK_TCK,
               (int(fields[13]) + int(fields[14])) / CLK_TCK)


# --- the observer: sink for ";1" halves, stopwatch for ";2" halves ---------------------

@dataclass
class CallWatch:
    steps: dict[str, tuple[datetime, dict[str, str]]] = field(default_factory=dict)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[str] = field(default_factory=list)  # event types, for a failed call's report


def asterisk_time(event: dict[str, Any]) -> datetime:
    return datetime.strptime(str(event["timestamp"]), "%Y-%m-%dT%H:%M:%S.%f%z")


class Observer:
    def __init__(self, box: Sandbox) -> None:
        self.client = AriClient(box.ari_url, box.ari_user, box.ari_password, OBSERVER_APP,
                                subscribe=ALL_CHANNELS_AND_BRIDGES)
        self.watches: dict[str, CallWatch] = {}
        self._connected = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pump = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), 10)

    async def close(self) -> None:
        await self.client.close()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

    async def _run(self) -> None:
        async for event in self.client.events():
            if event.get("type") == CONNECTED_EVENT:
                self._connected.set()
                continue
            watch = self.watches.get(str((event.get("channel") or {}).get("id")))
            if watch is None:
                continue
            watch.seen.append(str(event.get("type")))
            if (event.get("type") == "ChannelUserevent"
                    and event.get("eventname") == "BenchAgi"):
                fields = {str(k): str(v) for k, v in (event.get("userevent") or {}).items()}
                watch.steps[fields.get("step", "?")] = (asterisk_time(event), fields)
            elif event.get("type") == "ChannelDestroyed":
                watch.gone.set()


# --- calls --------------------------------------------------------------------------------

@dataclass
class Results:
    first_ms: list[float] = field(default_factory=list)
    second_ms: list[float] = field(default_factory=list)
    notices: dict[str, int] = field(default_factory=dict)  # "played/skipped" -> calls
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0


async def one_call(observer: Observer, context: str, results: Results,
                   timeout: float = CALL_TIMEOUT) -> None:
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    watch = observer.watches[theirs] = CallWatch()
    try:
        await observer.client.request("POST", "/channels", params={
            "endpoint": f"Local/s@{context}", "app": OBSERVER_APP,
            "channelId": ours, "otherChannelId": theirs})
        await asyncio.wait_for(watch.gone.wait(), timeout)
        steps = watch.steps
        if not {"before", "mid", "after"} <= steps.keys():
            _failed(results, f"steps seen: {sorted(steps)}; events: {watch.seen}")
            return
        (t0, _), (t1, mid), (t2, after) = steps["before"], steps["mid"], steps["after"]
        results.first_ms.append((t1 - t0).total_seconds() * 1000)
        results.second_ms.append((t2 - t1).total_seconds() * 1000)
        said = f"{mid.get('notice') or '-'}/{after.get('notice') or '-'}"
        results.notices[said] = results.notices.get(said, 0) + 1
    except TimeoutError:
        _failed(results, f"call not over within {timeout:.0f}s; steps {sorted(watch.steps)}; "
                f"events: {watch.seen}")
        await _hang_up(observer, ours)
    except AriError as exc:
        _failed(results, f"originate failed: {exc}")
    finally:
        observer.watches.pop(theirs, None)


def _failed(results: Results, why: str) -> None:
    results.failures.append(why)
    print(f"  call failed: {why}", file=sys.stderr, flush=True)


async def _hang_up(observer: Observer, channel_id: str) -> None:
    try:
        await observer.client.request("DELETE", f"/channels/{channel_id}")
    except AriNotFound:
        pass


async def run_calls(observer: Observer, context: str, calls: int, concurrency: int,
                    timeout: float = CALL_TIMEOUT) -> Results:
    results = Results()
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            await one_call(observer, context, results, timeout)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    results.wall_s = time.monotonic() - started
    return results


# --- the subjects -------------------------------------------------------------------------

@dataclass
class Measurement:
    label: str
    results: Results
    agi_cpu_s: float  # the AGI side: the server process, or Asterisk's children
    asterisk_cpu_s: float

    @property
    def completed(self) -> int:
        return len(self.results.first_ms)

    def per_call_ms(self, seconds: float) -> float:
        return seconds * 1000 / max(self.completed, 1)


def dialplan(context: str, agi: str) -> str:
    return (f"[{context}]\n"
            "exten => s,1,Answer()\n"
            " same => n,UserEvent(BenchAgi,step: before)\n"
            f" same => n,AGI({agi})\n"
            " same => n,UserEvent(BenchAgi,step: mid,notice: ${NOHOLD_NOTICE})\n"
            f" same => n,AGI({agi})\n"
            " same => n,UserEvent(BenchAgi,step: after,notice: ${NOHOLD_NOTICE})\n"
            " same => n,Hangup()\n")


async def measure(label: str, context: str, server_pid: int | None, box: Sandbox,
                  observer: Observer, args: argparse.Namespace) -> Measurement:
    warm = await run_calls(observer, context, args.warmup, 1, args.timeout)
    print(f"{label}: warm-up {len(warm.first_ms)}/{args.warmup} ok; measuring {args.calls} "
          f"calls, {args.concurrency} at once", flush=True)
    if args.warmup and not warm.first_ms:
        raise RuntimeError(f"{label}: every warm-up call failed, e.g. {warm.failures[0]}")
    if label != "floor" and "played/skipped" not in warm.notices:
        raise RuntimeError(f"{label}: no warm-up call heard the notice once ({warm.notices}): "
                           "nohold's AGI did not run (a nohold without nohold-agi? run "
                           "with PYTHONPATH=<this checkout>)")
    await asyncio.sleep(0.5)  # let the warm-up's last writes and reaping finish
    server0 = cpu_of(server_pid) if server_pid else None
    ast0 = cpu_of(box.pid)
    results = await run_calls(observer, context, args.calls, args.concurrency, args.timeout)
    await asyncio.sleep(0.5)
    ast1 = cpu_of(box.pid)
    if server_pid is not None and server0 is not None:
        agi_cpu = cpu_of(server_pid).own_s - server0.own_s
    else:
        agi_cpu = ast1.children_s - ast0.children_s
    return Measurement(label, results, agi_cpu, ast1.own_s - ast0.own_s)


def short_notice(path: Path) -> Path:
    """NOTICE_SECONDS of silence, 8 kHz mono 16-bit."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * int(8000 * NOTICE_SECONDS))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def wait_listening(log: Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Until the floor says it listens. Never by connecting: panoramisk's handler spins
    forever on a connection closed before its headers (docs/decisions/0005-fastagi.md),
    which would leave the floor deaf."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the floor exited ({proc.returncode}); see {log}")
        if "bare_fastagi listening" in _read(log):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the floor is not listening after {timeout:g}s; see {log}")


def import_ms(runs: int = 5) -> tuple[float, float]:
    """Wall ms of a bare `python -c pass` and of importing nohold-agi's module (medians)."""
    def median_of(code: str) -> float:
        times = []
        for _ in range(runs):
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", code], check=True, env=clean_env())
            times.append((time.monotonic() - started) * 1000)
        return statistics.median(times)
    return median_of("pass"), median_of("import nohold.agi_cli")


def proof_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT outcome, count(*) FROM notice_plays GROUP BY outcome")
        return {str(outcome): int(n) for outcome, n in rows}


# --- report -------------------------------------------------------------------------------

HEADER = ["AGI", "calls ok", "1st AGI median ms", "1st p90", "2nd AGI median ms", "2nd p90",
          "AGI-side CPU ms/call", "Asterisk CPU ms/call", "calls/s", "notice 1st/2nd"]


def _row(m: Measurement) -> list[str]:
    r = m.results
    med = statistics.median
    return [m.label, f"{m.completed}/{m.completed + len(r.failures)}",
            f"{med(r.first_ms) if r.first_ms else math.nan:.1f}",
            f"{percentile(r.first_ms, 90):.1f}",
            f"{med(r.second_ms) if r.second_ms else math.nan:.1f}",
            f"{percentile(r.second_ms, 90):.1f}",
            f"{m.per_call_ms(m.agi_cpu_s):.1f}", f"{m.per_call_ms(m.asterisk_cpu_s):.1f}",
            f"{m.completed / r.wall_s if r.wall_s else math.nan:.2f}",
            ", ".join(f"{k} x{v}" for k, v in sorted(r.notices.items()))]


def _ratio(a: Measurement, floor: Measurement) -> list[str]:
    def x(p: float, q: float) -> str:
        return f"{p / q:.1f}x" if q and not math.isnan(p) else "n/a"

    med = statistics.median
    ra, rf = a.results, floor.results
    if not (ra.first_ms and rf.first_ms):
        return [f"{a.label}/floor"] + ["n/a"] * (len(HEADER) - 1)
    return [f"{a.label}/floor", "", x(med(ra.first_ms), med(rf.first_ms)),
            x(percentile(ra.first_ms, 90), percentile(rf.first_ms, 90)),
            x(med(ra.second_ms), med(rf.second_ms)),
            x(percentile(ra.second_ms, 90), percentile(rf.second_ms, 90)),
            x(a.per_call_ms(a.agi_cpu_s), floor.per_call_ms(floor.agi_cpu_s)),
            x(a.per_call_ms(a.asterisk_cpu_s), floor.per_call_ms(floor.asterisk_cpu_s)),
            x(a.completed / ra.wall_s, floor.completed / rf.wall_s), ""]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(ms: list[Measurement], args: argparse.Namespace, version: str,
           rows: dict[str, int], imports: tuple[float, float], problems: list[str]) -> str:
    floor = ms[0]
    out = [
        "",
        f"AGI cost per call: {args.calls} calls per AGI, {args.concurrency} at once, after "
        f"{args.warmup} warm-up calls; each call runs its AGI twice",
        *machine_info(version),
        "1st AGI: nohold claims the notice and plays it (a 0.1 s file); 2nd AGI: nohold "
        "skips it; the floor sends one command each time",
        "ms = Asterisk's timestamps of the UserEvents around the step (ARI, ms resolution)",
        "AGI-side CPU = the server process (floor, nohold run), or the processes Asterisk "
        "started and reaped (classic: nohold-agi)",
        "",
        format_table([_row(m) for m in ms] + [_ratio(m, floor) for m in ms[1:]]),
        "",
        f"a bare `python -c pass`: {imports[0]:.0f} ms; `python -c 'import nohold.agi_cli'`: "
        f"{imports[1]:.0f} ms (wall, median of 5, this machine, now)",
        "proof rows (warm-up included): "
        + (", ".join(f"{k}={v}" for k, v in sorted(rows.items())) or "none")
        + f" (expected completed={2 * (args.calls + args.warmup)})",
    ]
    for m in ms:
        if m.results.failures:
            out.append(f"{m.label}: {len(m.results.failures)} failed calls, e.g. "
                       f"{m.results.failures[0]}")
    out.append(f"error/traceback lines (nohold log, Asterisk's stderr): {len(problems)}")
    out.extend(f"  {line}" for line in problems[:20])
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------------

def prepare(box: Sandbox, work: Path) -> tuple[Path, Any, int]:
    """Config (the 0.1 s notice), schema, prompts and the three dialplan contexts."""
    notice = short_notice(work / "bench_notice.wav")
    config = write_sandbox_config(box, work / "nohold.toml", {
        "notice": {"prompt": "bench_notice"},
        "prompts": {"files": {"bench_notice": str(notice)}},
        "logging": {"level": "warning"},
    })
    cli = [sys.executable, "-m", "nohold.cli", "--config", str(config)]
    upgrade = subprocess.run([*cli, "db", "upgrade"], capture_output=True, text=True,
                             env=clean_env(), check=False)
    if upgrade.returncode != 0:
        raise RuntimeError(f"nohold db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    settings = load_settings(config, env={})
    build_prompts(settings.prompts)
    floor_port = free_port()
    box.add_dialplan(
        dialplan("bench-agi-floor", f"agi://127.0.0.1:{floor_port}/floor")
        + dialplan("bench-agi-fastagi",
                   f"agi://127.0.0.1:{settings.agi.port}/notice_once")
        + dialplan("bench-agi-classic", f"nohold-agi,-c,{config},notice_once"))
    return config, settings, floor_port


async def bench(box: Sandbox, work: Path, args: argparse.Namespace,
                running: list[subprocess.Popen[bytes]]) -> str:
    from nohold import logs

    cancel_on_sigterm()
    config, settings, floor_port = prepare(box, work)
    imports = import_ms()

    floor = Subject("floor", "", "", [sys.executable, str(BENCH_DIR / "bare_fastagi.py"),
                                      "--port", str(floor_port)], clean_env(),
                    work / "floor.log")
    cli = [sys.executable, "-m", "nohold.cli", "--config", str(config)]
    nohold = Subject("nohold", settings.ari.app, "", [*cli, "run"], clean_env(),
                     work / "nohold.log")
    observer = Observer(box)
    await observer.start()
    try:
        version = str((await observer.client.check()).get("system", {}).get("version", "?"))
        floor_proc = start_process(floor)
        running.append(floor_proc)
        await wait_listening(floor.log_path, floor_proc)
        nohold_proc = start_process(nohold)
        running.append(nohold_proc)
        await wait_registered(observer.client, nohold, nohold_proc)
        measured = [await measure("floor", "bench-agi-floor", floor_proc.pid, box, observer,
                                  args),
                    await measure("fastagi", "bench-agi-fastagi", nohold_proc.pid, box,
                                  observer, args),
                    await measure("classic", "bench-agi-classic", None, box, observer, args)]
    finally:
        await observer.close()
    problems = logs.problem_lines(nohold.log_path.read_text(errors="replace")
                                  + box.log_path.read_text(errors="replace"))
    return report(measured, args, version, proof_rows(work / "nohold.db"), imports, problems)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="measured calls per AGI")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted calls first")
    parser.add_argument("--timeout", type=float, default=CALL_TIMEOUT,
                        help="seconds a call may take before it counts as failed")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (config, logs, SQLite database)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_bench(
        "nohold-bench-agi-", args.keep,
        lambda: start_sandbox(f"bench-agi-{os.getpid()}", "",
                              lambda msg: print(msg, flush=True)),
        lambda box, work, running: bench(box, work, args, running))


if __name__ == "__main__":
    sys.exit(main())
