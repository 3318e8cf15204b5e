"""How long after a call enters Stasis does the recording notice start? nohold vs. a floor.

Prints figures, asserts nothing. Against a private sandbox Asterisk 22 it runs,
one after the other:

- floor:  bench/bare_app.py, a bare Stasis app that answers and plays the notice;
- nohold: the real `nohold run` (python -m nohold.cli --config X run).

Each gets `--warmup` uncounted calls, then `--calls` calls with `--concurrency`
in flight. A call is a Local channel pair originated over ARI: ";1" sits in our
own observer app, ";2" runs the dialplan into the app under test. As soon as
the notice starts on ";2" we hang up ";1", wait until ";2" is gone and place
the next call.

Latency uses Asterisk's own event timestamps (ms resolution), seen by one
observer app subscribed to everything, the same way for both apps:

    start = `timestamp` of ChannelDialplan on ";2" with dialplan_app == "Stasis"
            (an app subscribed to all channels never gets StasisStart of another
            app; Asterisk stamps this event and StasisStart in the same millisecond)
    end   = `timestamp` of PlaybackStarted with target_uri "channel:<;2 id>" and a
            media_uri ending in "/notice"

CPU (utime+stime) and memory (VmRSS, VmHWM) are read from /proc for the app's
process: "before" after the warm-up, "after" once its CPU time has stopped
moving after the last call.

    .venv/bin/python bench/notice_latency.py --calls 200 --concurrency 20
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import (
    ProcSample,
    Subject,
    cancel_on_sigterm,
    clean_env,
    machine_info,
    percentile,
    run_bench,
    settled_sample,
    start_process,
    stop_process,
    wait_registered,
)

from nohold import logs
from nohold.ari_apps.ari_client import CONNECTED_EVENT, AriClient, AriError, AriNotFound
from nohold.prompts import build_prompts
from nohold.registry import load_settings
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ALL_CHANNELS_AND_BRIDGES
from nohold.sandbox.nohold_config import write_sandbox_config

BENCH_DIR = Path(__file__).resolve().parent
OBSERVER_APP = "bench-observer"
BARE_APP = "bench-bare"
BARE_DIALPLAN = f"[{BARE_APP}]\nexten => s,1,Stasis({BARE_APP})\n same => n,Hangup()\n"
NOTICE_TIMEOUT = 30.0  # s from originate to the notice starting before a call counts as failed
GONE_TIMEOUT = 10.0  # s to wait for ";2" to be destroyed after hanging up ";1"


# --- the observer: sink for ";1" halves and stopwatch for ";2" halves ----------------

@dataclass
class CallWatch:
    entered: datetime | None = None  # ChannelDialplan Stasis on ";2"
    answered: datetime | None = None  # ChannelStateChange to Up on ";2"
    notice: datetime | None = None  # PlaybackStarted of the notice on ";2"
    notice_started: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)


def asterisk_time(event: dict[str, Any]) -> datetime:
    """Asterisk's event timestamp, e.g. "2026-11-23T07:13:39.469+0000"."""
    return datetime.strptime(str(event["timestamp"]), "%Y-%m-%dT%H:%M:%S.%f%z")


class Observer:
    """One ARI app subscribed to every channel: the ";1" halves sit in it, and it
    timestamps the ";2" halves."""

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

    def watch(self, channel_id: str) -> CallWatch:
        self.watches[channel_id] = CallWatch()
        return self.watches[channel_id]

    def forget(self, channel_id: str) -> None:
        self.watches.pop(channel_id, None)

    async def _run(self) -> None:
        async for event in self.client.events():
            if event.get("type") == CONNECTED_EVENT:
                self._connected.set()
                continue
            self._note(event)

    def _note(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "PlaybackStarted":
            playback = event.get("playback") or {}
            target = str(playback.get("target_uri", ""))
            watch = self.watches.get(target.removeprefix("channel:"))
            if (watch and target.startswith("channel:") and watch.notice is None
                    and str(playback.get("media_uri", "")).endswith("/notice")):
                watch.notice = asterisk_time(event)
                watch.notice_started.set()
            return
        watch = self.watches.get(str((event.get("channel") or {}).get("id")))
        if watch is None:
            return
        if kind == "ChannelDialplan" and event.get("dialplan_app") == "Stasis":
            if watch.entered is None:
                watch.entered = asterisk_time(event)
        elif kind == "ChannelStateChange" and (event.get("channel") or {}).get("state") == "Up":
            if watch.answered is None:
                watch.answered = asterisk_time(event)
        elif kind == "ChannelDestroyed":
            watch.gone.set()
            watch.notice_started.set()  # wake the caller: no notice will come now


# --- calls --------------------------------------------------------------------------

@dataclass
class CallResults:
    latencies_ms: list[float] = field(default_factory=list)
    # The same calls split where Asterisk saw the answer: Stasis -> Up (the app got
    # the call and asked to answer) and Up -> PlaybackStarted (what it did before play).
    to_answer_ms: list[float] = field(default_factory=list)
    answer_to_notice_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0


async def one_call(observer: Observer, endpoint: str, results: CallResults) -> None:
    """Place a call, wait for the notice to start, hang up, wait until the call is gone."""
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    watch = observer.watch(theirs)
    try:
        await observer.client.request("POST", "/channels", params={
            "endpoint": endpoint, "app": OBSERVER_APP,
            "channelId": ours, "otherChannelId": theirs,
        })
        await asyncio.wait_for(watch.notice_started.wait(), NOTICE_TIMEOUT)
        if watch.entered is None or watch.notice is None:
            results.failures.append(
                f"no notice (entered Stasis: {watch.entered is not None}, "
                f"channel gone: {watch.gone.is_set()})"
            )
        else:
            results.latencies_ms.append((watch.notice - watch.entered).total_seconds() * 1000)
            if watch.answered is not None:
                results.to_answer_ms.append(
                    (watch.answered - watch.entered).total_seconds() * 1000)
                results.answer_to_notice_ms.append(
                    (watch.notice - watch.answered).total_seconds() * 1000)
    except TimeoutError:
        results.failures.append(f"notice not started within {NOTICE_TIMEOUT:.0f}s")
    except AriError as exc:
        results.failures.append(f"originate failed: {exc}")
    # Not in a finally: when we are interrupted, stopping the sandbox ends every call.
    await hang_up(observer, ours, watch)
    observer.forget(theirs)


async def hang_up(observer: Observer, channel_id: str, watch: CallWatch) -> None:
    try:
        await observer.client.request("DELETE", f"/channels/{channel_id}")
    except AriNotFound:
        pass
    except AriError as exc:
        print(f"  hang-up of {channel_id} failed: {exc}", file=sys.stderr)
    try:
        await asyncio.wait_for(watch.gone.wait(), GONE_TIMEOUT)
    except TimeoutError:
        print(f"  ;2 of {channel_id} not gone {GONE_TIMEOUT:.0f}s after hang-up", file=sys.stderr)


async def run_calls(observer: Observer, endpoint: str, calls: int, concurrency: int) -> CallResults:
    """`calls` calls, `concurrency` in flight: each worker places its next call when one ends."""
    results = CallResults()
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            await one_call(observer, endpoint, results)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    results.wall_s = time.monotonic() - started
    return results


# --- the apps under test ------------------------------------------------------------

@dataclass
class Measurement:
    label: str
    results: CallResults
    before: ProcSample
    after: ProcSample
    problems: list[str]

    @property
    def completed(self) -> int:
        return len(self.results.latencies_ms)

    @property
    def cpu_ms_per_call(self) -> float:
        return (self.after.cpu_s - self.before.cpu_s) * 1000 / max(self.completed, 1)

    @property
    def rss_growth_kb_per_call(self) -> float:
        return (self.after.rss_kb - self.before.rss_kb) / max(self.completed, 1)


def problem_lines(log_path: Path) -> list[str]:
    return logs.problem_lines(log_path.read_text(errors="replace") if log_path.exists() else "")


async def measure(subject: Subject, observer: Observer, args: argparse.Namespace,
                  running: list[subprocess.Popen[bytes]]) -> Measurement:
    print(f"{subject.label}: starting, log {subject.log_path}", flush=True)
    proc = start_process(subject)
    running.append(proc)
    try:
        await wait_registered(observer.client, subject, proc)
        warm = await run_calls(observer, subject.endpoint, args.warmup, args.concurrency)
        print(f"{subject.label}: warm-up {len(warm.latencies_ms)}/{args.warmup} ok; "
              f"measuring {args.calls} calls, {args.concurrency} at once", flush=True)
        before = await settled_sample(proc.pid)
        results = await run_calls(observer, subject.endpoint, args.calls, args.concurrency)
        after = await settled_sample(proc.pid)
    finally:
        stop_process(proc)
        running.remove(proc)
    return Measurement(subject.label, results, before, after, problem_lines(subject.log_path))


# --- setting up the two subjects ----------------------------------------------------

def prepare_nohold(box: Sandbox, work: Path,
                   overrides: dict[str, dict[str, Any]] | None = None) -> tuple[Subject, str]:
    """Config, schema and prompts as an admin would; returns the subject and the notice
    media. `overrides` (--set) change the sandbox's config, e.g. {"ami": {"enabled": False}}."""
    config = write_sandbox_config(box, work / "nohold.toml", overrides)
    cli = [sys.executable, "-m", "nohold.cli", "--config", str(config)]
    upgrade = subprocess.run([*cli, "db", "upgrade"], capture_output=True, text=True,
                             env=clean_env(), check=False)
    if upgrade.returncode != 0:
        raise RuntimeError(f"nohold db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    settings = load_settings(config, env={})
    build_prompts(settings.prompts)
    media = f"sound:{settings.prompts.asterisk_path}/{settings.notice.prompt}"
    subject = Subject("nohold", settings.ari.app, "Local/s@nohold-inbound", [*cli, "run"],
                      clean_env(), work / "nohold.log")
    return subject, media


def prepare_floor(box: Sandbox, work: Path, media: str) -> Subject:
    cmd = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--url", box.ari_url,
           "--user", box.ari_user, "--app", BARE_APP, "--media", media]
    return Subject("floor", BARE_APP, f"Local/s@{BARE_APP}", cmd,
                   clean_env({"BENCH_ARI_PASSWORD": box.ari_password}), work / "floor.log")


# --- report -------------------------------------------------------------------------

def ledger_outcomes(db: Path) -> dict[str, int]:
    """nohold's proof rows by outcome. Every call here hangs up as the notice starts
    (it lasts seconds), so each row should read caller_hung_up."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT outcome, count(*) FROM notice_plays GROUP BY outcome")
        return {str(outcome): int(n) for outcome, n in rows}


def _row(m: Measurement) -> list[str]:
    lat = m.results.latencies_ms
    mb = 1024.0
    return [
        m.label, f"{m.completed}/{m.completed + len(m.results.failures)}",
        f"{statistics.median(lat) if lat else math.nan:.1f}", f"{percentile(lat, 99):.1f}",
        f"{max(lat) if lat else math.nan:.1f}", f"{m.cpu_ms_per_call:.2f}",
        f"{m.before.rss_kb / mb:.1f}", f"{m.after.rss_kb / mb:.1f}", f"{m.after.hwm_kb / mb:.1f}",
        f"{m.rss_growth_kb_per_call:.1f}", f"{m.completed / m.results.wall_s:.1f}",
    ]


def _ratio_row(a: Measurement, b: Measurement) -> list[str]:
    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}x" if y else "n/a"

    la, lb = a.results.latencies_ms, b.results.latencies_ms
    med = ratio(statistics.median(la), statistics.median(lb)) if la and lb else "n/a"
    return [
        f"{a.label}/{b.label}", "", med, ratio(percentile(la, 99), percentile(lb, 99)),
        ratio(max(la, default=0), max(lb, default=0)),
        ratio(a.cpu_ms_per_call, b.cpu_ms_per_call), ratio(a.before.rss_kb, b.before.rss_kb),
        ratio(a.after.rss_kb, b.after.rss_kb), ratio(a.after.hwm_kb, b.after.hwm_kb), "",
        ratio(a.completed / a.results.wall_s, b.completed / b.results.wall_s),
    ]


def _mid_p99(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):5.1f} / {percentile(values, 99):5.1f}"


HEADER = ["app", "calls ok", "median ms", "p99 ms", "max ms", "CPU ms/call", "RSS MB before",
          "RSS MB after", "RSS MB peak", "RSS KB/call", "calls/s"]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(floor: Measurement, nohold: Measurement, args: argparse.Namespace,
           asterisk_version: str, outcomes: dict[str, int]) -> str:
    out = [
        "",
        f"notice latency: {args.calls} calls, {args.concurrency} at once, after "
        f"{args.warmup} warm-up calls (not counted)",
        "nohold config: the sandbox's" + "".join(
            f", {section}.{key}={value!r}" for section, key, value in args.set),
        *machine_info(asterisk_version),
        "latency = Asterisk timestamp of PlaybackStarted(notice) on ;2 minus that of "
        "ChannelDialplan(Stasis) on ;2 (ms resolution)",
        "CPU = utime+stime of the app process over the measured calls / calls ok; "
        "RSS before = after warm-up, peak = VmHWM",
        "",
        format_table([_row(nohold), _row(floor), _ratio_row(nohold, floor)]),
        "",
        "where the time goes (Asterisk's timestamps; Up = ChannelStateChange to Up on ;2), "
        "median / p99 ms:",
        *(f"  {m.label:<7} Stasis -> Up {_mid_p99(m.results.to_answer_ms)}   "
          f"Up -> notice {_mid_p99(m.results.answer_to_notice_ms)}" for m in (nohold, floor)),
        "",
        "nohold proof rows (warm-up included) by outcome: "
        + (", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "none")
        + " (each call hung up as the notice started: all should be caller_hung_up)",
    ]
    for m in (nohold, floor):
        if m.results.failures:
            out.append(f"\n{m.label}: {len(m.results.failures)} failed calls, e.g. "
                       f"{m.results.failures[0]}")
        out.append(f"\n{m.label} log: {len(m.problems)} error/traceback lines")
        out.extend(f"  {line}" for line in m.problems[:args.show_errors])
        if len(m.problems) > args.show_errors:
            out.append(f"  ... {len(m.problems) - args.show_errors} more")
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------

async def bench(box: Sandbox, work: Path, args: argparse.Namespace,
                running: list[subprocess.Popen[bytes]]) -> str:
    cancel_on_sigterm()
    nohold, media = prepare_nohold(box, work, overrides_of(args.set))
    floor = prepare_floor(box, work, media)
    observer = Observer(box)
    await observer.start()
    try:
        info = await observer.client.check()
        floor_m = await measure(floor, observer, args, running)
        nohold_m = await measure(nohold, observer, args, running)
    finally:
        await observer.close()
    version = str(info.get("system", {}).get("version", "?"))
    return report(floor_m, nohold_m, args, version, ledger_outcomes(work / "nohold.db"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="measured calls per app")
    parser.add_argument("--concurrency", type=int, default=20, help="calls in flight at once")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted calls first")
    parser.add_argument("--show-errors", type=int, default=20,
                        help="how many error log lines to print per app")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (config, logs, SQLite database)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        type=config_override,
                        help="change nohold's config, VALUE in TOML (repeatable), e.g. "
                             "--set ami.enabled=false or --set logging.level='\"warning\"'")
    return parser.parse_args(argv)


def config_override(text: str) -> tuple[str, str, Any]:
    """`ami.enabled=false` -> ("ami", "enabled", False); the value is read as TOML."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key or "." in key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SECTION.KEY=VALUE (one "
                                         "section, one key: no sub-tables)")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a TOML value "
                                         f"(strings need quotes): {exc}") from exc
    return section, key, parsed


def overrides_of(sets: list[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for section, key, value in sets:
        merged.setdefault(section, {})[key] = value
    return merged


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_bench(
        "nohold-bench-", args.keep,
        lambda: start_sandbox(f"bench-{os.getpid()}", BARE_DIALPLAN,
                              lambda msg: print(msg, flush=True)),
        lambda box, work, running: bench(box, work, args, running))


if __name__ == "__main__":
    sys.exit(main())
