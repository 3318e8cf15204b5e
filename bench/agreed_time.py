"""Callbacks at an agreed time: how late is the agent connected, and the customer's phone
ringing, against the time agreed with the customer? And the dispatcher's CPU per
callback, against a floor. (Issue 9: 10 k callbacks due within one hour, 1 M rows in
the table, SQLite and PostgreSQL; goal p99 <= 60 s at the agents' capacity.)

Prints figures, asserts nothing. Against a private sandbox Asterisk 22 (the callbacks
end-to-end bed of tests/e2e/callback_bed.py: queue cb-billing, `--agents` agents that
answer at once, customers who answer after 0.5 s of ringing and talk `--talk` s):

- the plan: `--callbacks` N callbacks whose agreed times are spread evenly over
  `--span` S seconds, so N/S is the issue's rate (10 k per hour, 2.78/s) or `--rate`;
  `--callbacks 10000 --span 3600` is the issue's full hour.
- floor: bench/bare_bridge_app.py (agent first, no database). The benchmark originates
  a free agent into it at each agreed time; it bridges the agent and dials the customer.
- nohold, per engine (`--engines`): the real `nohold run`. Before it starts, the
  callbacks table holds `--rows` final rows of past days (callback_dial.py's seeding)
  and the N callbacks, booked with the store's own `request(..., due_at=...)` (what
  `nohold callbacks add` and ari_apps/callbacks/booking.py store: scheduled, window
  `--window` s from the agreed time). The queue's agents are free; nohold stands each
  one as a placeholder at position 1 once due, the queue connects an agent, nohold
  dials the customer.

Figures, per callback, minus its agreed time (due_at), in seconds:
  agent up   Asterisk's timestamp of the agent's side going Up in the app (nohold: the
             placeholder's Stasis half, up when app_queue connects an agent; floor: the
             originated agent channel);
  connected  nohold's own stored attempt start (callback_attempts.agent_up_at, written
             when it saw the agent connected) (nohold only);
  ring       the customer's phone ringing (Asterisk's Dial RINGING; for nohold as stored
             in callback_attempts.customer_ring_at).
  early      how many of these came before the agreed time (a promise broken: must be 0).
CPU per callback: utime+stime of the app's process over the run (from just before the
first agreed time until it is idle after the last callback ended) / callbacks served;
for nohold on PostgreSQL also the server's (postmaster and backends), and Asterisk's.

    .venv/bin/python bench/agreed_time.py                              # a few minutes
    .venv/bin/python bench/agreed_time.py --callbacks 10000 --span 3600  # the full hour
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from callback_dial import (  # noqa: E402
    FLOOR_AGENT,
    FLOOR_APP,
    FLOOR_CUSTOMER,
    NOHOLD_AGENT,
    NOHOLD_CUSTOMER,
    OFFER_EVERY,
    databases,
    legs_from,
    seed_history,
)
from harness import (  # noqa: E402
    Subject,
    cancel_on_sigterm,
    clean_env,
    machine_info,
    percentile,
    run_bench,
    sample_process,
    settled_sample,
    start_process,
    stop_process,
    tree_cpu_s,
    wait_registered,
)
from sqlalchemy import func, select  # noqa: E402

from nohold.callbackdb.callbacks import CallbackStore  # noqa: E402
from nohold.callbackdb.engine import make_engine  # noqa: E402
from nohold.callbackdb.models import Callback, CallbackAttempt  # noqa: E402
from nohold.logs import problem_lines  # noqa: E402
from nohold.sandbox import Sandbox  # noqa: E402
from tests.e2e.callback_bed import (  # noqa: E402
    AGENTS,
    APP,
    CALLBACKS,
    QUEUE,
    scripted_call,
    start_cb_box,
)
from tests.support.asterisk_events import AsteriskEvents, Ev  # noqa: E402
from tests.support.nohold_process import NoholdProcess, run_cli, write_config  # noqa: E402
from tests.support.postgres import empty_database  # noqa: E402

ISSUE_RATE = 10_000  # callbacks per hour
GOAL_P99_S = 60.0
FINAL = ("completed", "expired", "cancelled")


# -- the recorder, lean: a long run keeps only what the figures need ----------------------
class LeanEvents(AsteriskEvents):
    """AsteriskEvents keeping only the agent side going Up, the customer's Dial (start
    and RINGING) and channels destroyed; and telling waiters when a channel is gone."""

    def __init__(self, box: Sandbox) -> None:
        super().__init__(box)
        self.gone: dict[str, asyncio.Future[float]] = {}

    def _add(self, ts: float, src: str, kind: str, data: dict[str, Any]) -> None:
        if src != "ari":
            return
        if kind == "ChannelStateChange":
            if (data.get("channel") or {}).get("state") != "Up":
                return
        elif kind == "Dial":
            if data.get("dialstatus", "") not in ("", "RINGING"):
                return
        elif kind == "ChannelDestroyed":
            channel_id = str((data.get("channel") or {}).get("id", ""))
            waiter = self.gone.pop(channel_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ts)
        else:
            return
        super()._add(ts, src, kind, data)


# -- the plan -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    callbacks: int
    span: float  # s over which the agreed times are spread

    @property
    def rate_per_hour(self) -> float:
        return self.callbacks * 3600 / self.span

    def due(self, t0: float) -> list[float]:
        """Evenly spread over [t0, t0 + span): one every span/callbacks seconds."""
        gap = self.span / self.callbacks
        return [t0 + i * gap for i in range(self.callbacks)]


@dataclass
class Result:
    label: str
    due: dict[str, float] = field(default_factory=dict)  # callback key -> agreed time
    agent_up: dict[str, float] = field(default_factory=dict)  # Asterisk's clock
    ring: dict[str, float] = field(default_factory=dict)
    connected: dict[str, float] = field(default_factory=dict)  # nohold's stored start
    busy: list[float] = field(default_factory=list)  # agent side up -> destroyed, s
    served: int = 0
    states: Counter[str] = field(default_factory=Counter)
    cpu_s: float = math.nan
    db_cpu_s: float = math.nan
    asterisk_cpu_s: float = math.nan
    seed_s: float = 0.0
    book_s: float = 0.0
    idle_ms_per_s: float = math.nan  # CPU per second with nothing due yet
    ready_ahead_s: float = math.nan  # nohold ready this long before the first agreed time
    problems: list[str] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)

    def late(self, which: dict[str, float]) -> list[float]:
        return [t - self.due[k] for k, t in which.items() if k in self.due]

    @property
    def early(self) -> int:
        keys = set(self.agent_up) | set(self.ring) | set(self.connected)
        return sum(1 for k in keys if k in self.due and any(
            k in d and d[k] < self.due[k] for d in (self.agent_up, self.ring, self.connected)))

    def per_callback_ms(self, cpu_s: float) -> float:
        return cpu_s * 1000 / self.served if self.served else math.nan


def read_events(result: Result, events: list[Ev], agent_re: Any, customer_re: Any) -> None:
    """Agent up and customer ringing per callback, from Asterisk's events; how long each
    agent side lived (a busy agent), from Up to ChannelDestroyed."""
    for leg in legs_from(events, agent_re, customer_re):
        if leg.agent_up is not None:
            result.agent_up.setdefault(leg.key, leg.agent_up)
        if leg.ringing is not None:
            result.ring.setdefault(leg.key, leg.ringing)
    up: dict[str, float] = {}
    for e in events:
        if not agent_re.match(e.channel_id):
            continue
        if e.type == "ChannelStateChange":
            up.setdefault(e.channel_id, e.ts)
        elif e.type == "ChannelDestroyed" and e.channel_id in up:
            result.busy.append(e.ts - up.pop(e.channel_id))


# -- floor --------------------------------------------------------------------------------
async def run_floor(box: Sandbox, rec: LeanEvents, work: Path, plan: Plan,
                    args: argparse.Namespace, running: list[subprocess.Popen[bytes]]
                    ) -> Result:
    result = Result("floor")
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    subject = Subject("floor", FLOOR_APP, "", [
        sys.executable, str(BENCH_DIR / "bare_bridge_app.py"), "--url", box.ari_url,
        "--user", box.ari_user, "--app", FLOOR_APP],
        clean_env({"BENCH_ARI_PASSWORD": box.ari_password}), work / "floor.log")
    proc = start_process(subject)
    running.append(proc)
    mark = len(rec.events)
    try:
        await wait_registered(rec.ari, subject, proc)
        free: asyncio.Queue[str] = asyncio.Queue()
        for agent in AGENTS[:args.agents]:
            free.put_nowait(agent)
        t0 = time.time() + 3
        dues = plan.due(t0)
        result.due = {str(i): due for i, due in enumerate(dues)}

        async def one(n: int, due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.time()))
            agent = await free.get()
            channel_id = f"fl-{n}"
            gone = rec.gone[channel_id] = asyncio.get_running_loop().create_future()
            try:
                await rec.rest("POST", "/channels", endpoint=agent, app=FLOOR_APP,
                               appArgs=f"agent,Local/48{scripted_call(n)}@cb-customers",
                               channelId=channel_id)
                await asyncio.wait_for(gone, args.talk + 60)
                result.served += 1
            finally:
                rec.gone.pop(channel_id, None)
                free.put_nowait(agent)

        await asyncio.sleep(max(0.0, t0 - 1 - time.time()))
        before = sample_process(proc.pid)
        ast_before = tree_cpu_s(box.pid)
        await asyncio.gather(*(one(n, due) for n, due in enumerate(dues)))
        after = await settled_sample(proc.pid)
        result.cpu_s = after.cpu_s - before.cpu_s
        result.asterisk_cpu_s = tree_cpu_s(box.pid) - ast_before
    finally:
        stop_process(proc)
        running.remove(proc)
    read_events(result, rec.events[mark:], FLOOR_AGENT, FLOOR_CUSTOMER)
    result.problems = problem_lines(subject.log_path.read_text(errors="replace"))
    return result


# -- nohold -------------------------------------------------------------------------------
async def book(store: CallbackStore, dues: list[float], window: float) -> list[int]:
    """The callbacks, as `nohold callbacks add` stores them (booking.py's store.request):
    scheduled for their agreed time, promised and expiring at the window's end."""
    ids = []
    for i, due in enumerate(dues):
        at = datetime.fromtimestamp(due, UTC)
        until = at + timedelta(seconds=window)
        now = datetime.now(UTC)
        row, new = await store.request(
            call_id=f"bench-{i}", number=f"+48{scripted_call(i)}", queue=QUEUE,
            arrived_at=at, now=now, promised=(at, until), expires_at=until, due_at=at,
            note=f"bench {i}")
        assert new and row.scheduled, row
        ids.append(row.id)
    return ids


async def stored(store: CallbackStore, ids: list[int], result: Result) -> None:
    """Each callback's agreed time, state and first attempt, as nohold stored them."""
    def at(value: datetime | None) -> float | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()

    low, high = min(ids), max(ids)
    # due_at is the agreed time until the attempt ends (end_attempt then writes the next
    # retry's time, None when final); the promise's start keeps it (booking.py).
    stmt = (select(Callback.id, Callback.state, Callback.outcome, Callback.promised_earliest,
                   CallbackAttempt.attempt, CallbackAttempt.agent_up_at,
                   CallbackAttempt.customer_ring_at)
            .outerjoin(CallbackAttempt, CallbackAttempt.callback_id == Callback.id)
            .where(Callback.id >= low, Callback.id <= high)
            .order_by(Callback.id, CallbackAttempt.attempt))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    seen = set()
    for r in rows:
        key = str(r.id)
        if key not in seen:
            seen.add(key)
            result.states[f"{r.state}/{r.outcome}"] += 1
            due = at(r.promised_earliest)
            assert due is not None
            result.due[key] = due
            if r.state != "completed":
                result.unserved.append(f"{key}: {r.state} {r.outcome}")
        if r.attempt is not None and key not in result.connected:
            if (up := at(r.agent_up_at)) is not None:
                result.connected[key] = up
        if r.attempt is not None and (ring := at(r.customer_ring_at)) is not None:
            result.ring.setdefault(key, ring)


async def count_final(store: CallbackStore, ids: list[int]) -> int:
    """How many of the run's callbacks are final (by id range: the history rows are
    older; a range, not a list of 10 k ids asked every second)."""
    stmt = select(func.count()).select_from(Callback).where(
        Callback.id >= min(ids), Callback.id <= max(ids), Callback.state.in_(FINAL))
    async with store.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server behind `url` (the one listening on its port)."""
    port = urlsplit(url).port
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"postgres") and f"-p {port}".encode() in b" ".join(cmd):
            return int(entry.name)
    return None


async def run_nohold(box: Sandbox, rec: LeanEvents, work: Path, label: str, url: str,
                     plan: Plan, args: argparse.Namespace) -> Result:
    result = Result(label)
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    url = url or f"sqlite:///{work / 'nohold.db'}"
    if url.startswith("postgresql"):
        await empty_database(url)
    config = write_config(box, work / "nohold.toml", {
        "callbacks": {**CALLBACKS, "ring_timeout": 15, "max_attempts": 1,
                      "offer_every": OFFER_EVERY, "offer_after": OFFER_EVERY},
        "logging": {"level": "info"}, "database": {"url": url}})
    upgrade = await asyncio.to_thread(run_cli, config, "db", "upgrade")
    if upgrade.returncode != 0:
        raise RuntimeError(f"db upgrade: {upgrade.stdout}{upgrade.stderr}")
    started = time.monotonic()
    await seed_history(url, args.rows)
    result.seed_s = time.monotonic() - started
    store = CallbackStore(make_engine(url), "bench-booker")
    proc = NoholdProcess(config=config, log_path=work / "nohold.log", app=APP)
    postmaster = postmaster_pid(url) if url.startswith("postgresql") else None
    try:
        # Booked before nohold starts, the first agreed time far enough ahead for the
        # bookings and nohold's start (checked: ready_ahead_s).
        t0 = time.time() + args.lead + plan.callbacks * 0.01
        started = time.monotonic()
        ids = await book(store, plan.due(t0), args.window)
        result.book_s = time.monotonic() - started
        mark = len(rec.events)
        proc.start()
        await proc.wait_ready(box)
        result.ready_ahead_s = t0 - time.time()
        assert proc.proc is not None
        # Idle (nothing due yet, the dialler polling the table every second): from a
        # few seconds after the start until just before the first agreed time.
        await asyncio.sleep(min(3.0, max(0.0, t0 - 5 - time.time())))
        idle_from, idle_at = sample_process(proc.proc.pid), time.monotonic()
        await asyncio.sleep(max(0.0, t0 - 1 - time.time()))
        before = sample_process(proc.proc.pid)
        if time.monotonic() - idle_at >= 5:
            result.idle_ms_per_s = (before.cpu_s - idle_from.cpu_s) * 1000 / (
                time.monotonic() - idle_at)
        db_before = tree_cpu_s(postmaster) if postmaster else math.nan
        ast_before = tree_cpu_s(box.pid)
        deadline = t0 + plan.span + args.window + 120
        while time.time() < deadline:
            if await count_final(store, ids) == len(ids):
                break
            await asyncio.sleep(1)
        after = await settled_sample(proc.proc.pid)
        result.cpu_s = after.cpu_s - before.cpu_s
        result.db_cpu_s = (tree_cpu_s(postmaster) - db_before) if postmaster else math.nan
        result.asterisk_cpu_s = tree_cpu_s(box.pid) - ast_before
        await stored(store, ids, result)
        result.served = result.states.get("completed/talked", 0)
    finally:
        proc.stop()
        await store.engine.dispose()
    events = rec.events[mark:]
    agent_up = Result("events")
    read_events(agent_up, events, NOHOLD_AGENT, NOHOLD_CUSTOMER)
    result.agent_up, result.busy = agent_up.agent_up, agent_up.busy
    result.problems = problem_lines(proc.log_path.read_text(errors="replace"))
    return result


# -- report -------------------------------------------------------------------------------
def _s(values: list[float], pct: float | None) -> str:
    if not values:
        return "-"
    value = max(values) if pct == 100 else (
        statistics.median(values) if pct is None else percentile(values, pct))
    return f"{value:.2f}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def quarters(r: Result) -> str:
    """Lateness of agent up through the run: does a backlog build up?"""
    keys = sorted((k for k in r.agent_up if k in r.due), key=r.due.__getitem__)
    if not keys:
        return "-"
    parts = []
    for q in range(4):
        late = [r.agent_up[k] - r.due[k] for k in keys[q * len(keys) // 4:
                                                        (q + 1) * len(keys) // 4]]
        parts.append(f"{_s(late, None)}/{_s(late, 100)}")
    return "  ".join(parts)


HEADER = ["run", "served", "early", "agent up p50", "p99", "max", "connected p50", "p99",
          "max", "ring p50", "p99", "max", "CPU ms/cb", "x floor", "DB ms/cb",
          "Asterisk ms/cb", "idle ms/s", "agent busy s"]


def row(r: Result, floor: Result) -> list[str]:
    up, conn, ring = r.late(r.agent_up), r.late(r.connected), r.late(r.ring)
    cpu, floor_cpu = r.per_callback_ms(r.cpu_s), floor.per_callback_ms(floor.cpu_s)
    ratio = f"{cpu / floor_cpu:.2f}x" if r is not floor and floor_cpu else ""
    return [r.label, f"{r.served}/{len(r.due)}", str(r.early),
            _s(up, None), _s(up, 99), _s(up, 100), _s(conn, None), _s(conn, 99),
            _s(conn, 100), _s(ring, None), _s(ring, 99), _s(ring, 100), _ms(cpu), ratio,
            _ms(r.per_callback_ms(r.db_cpu_s)), _ms(r.per_callback_ms(r.asterisk_cpu_s)),
            _ms(r.idle_ms_per_s),
            f"{statistics.mean(r.busy):.1f}" if r.busy else "-"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(floor: Result, runs: list[Result], plan: Plan, args: argparse.Namespace,
           version: str) -> str:
    out = ["", f"callbacks at an agreed time: {plan.callbacks} callbacks agreed evenly over "
           f"{plan.span:g} s ({plan.rate_per_hour:,.0f} per hour, one every "
           f"{plan.span / plan.callbacks:.2f} s); {args.agents} agents; customers answer "
           f"after 0.5 s and talk {args.talk:g} s; nohold: {args.rows:,} final rows of past "
           f"days in the table, window {args.window:g} s",
           *machine_info(version),
           "lateness (s) = when it happened - the agreed time: agent up = the agent's side Up "
           "in the app (Asterisk's clock); connected = nohold's stored "
           "callback_attempts.agent_up_at; ring = customer's phone ringing (Dial RINGING); "
           "early = callbacks with any of them before the agreed time",
           "CPU ms/cb = app process utime+stime from the first agreed time until idle after "
           "the last / callbacks served; x floor = that / the floor's; DB = PostgreSQL "
           "server; idle = nohold's CPU per second before the first agreed time (the dialler's "
           "polling alone); agent busy = the agent side's life, Up to destroyed (mean)",
           "", table([row(floor, floor), *(row(r, floor) for r in runs)]), ""]
    for r in (floor, *runs):
        conn = r.late(r.connected) or r.late(r.agent_up)
        p99 = percentile(conn, 99) if conn else math.nan
        goal = "met" if p99 <= GOAL_P99_S else "NOT met"
        extra = (f"; seeded {r.seed_s:.0f} s, booked {r.book_s:.0f} s, ready "
                 f"{r.ready_ahead_s:.0f} s before the first agreed time" if r is not floor
                 else "")
        busy = plan.rate_per_hour / 3600 * statistics.mean(r.busy) / args.agents \
            if r.busy else math.nan
        out.append(f"{r.label}: goal p99 <= {GOAL_P99_S:g} s {goal} ({p99:.2f} s); agents "
                   f"busy {busy:.0%} of the time (rate x agent busy / agents)")
        out.append("  agent up late by quarter of the span, p50/max s (a backlog grows "
                   "quarter by quarter): " + quarters(r))
        if r is not floor:
            out[-2] += extra
            out.append("  final states: " + ", ".join(f"{k} {v}" for k, v in
                                                     sorted(r.states.items())))
        if r.unserved:
            out.append(f"  not served: {len(r.unserved)}, e.g. {'; '.join(r.unserved[:5])}")
        if r.problems:
            out.append(f"  {len(r.problems)} error/traceback log lines:")
            out.extend(f"    {line}" for line in r.problems[:10])
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------
async def bench(box: Sandbox, work: Path, args: argparse.Namespace,
                running: list[subprocess.Popen[bytes]]) -> str:
    cancel_on_sigterm()
    plan = Plan(args.callbacks, args.span)
    rec = LeanEvents(box)
    async with rec:
        await rec.action("Setvar", Variable="GLOBAL(CB_TALK)", Value=f"{args.talk:g}")
        info = await rec.ari.check()
        version = str(info.get("system", {}).get("version", "?"))
        print(f"plan: {plan.callbacks} callbacks over {plan.span:g} s "
              f"({plan.rate_per_hour:,.0f}/hour)", flush=True)
        floor = Result("floor")
        if not args.no_floor:
            print("floor: running", flush=True)
            floor = await run_floor(box, rec, work / "floor", plan, args, running)
            rec.events.clear()
        runs = []
        with databases(args.engines, work) as urls:
            for engine in args.engines:
                print(f"nohold {engine}, {args.rows:,} rows: running", flush=True)
                runs.append(await run_nohold(box, rec, work / engine, f"nohold {engine}",
                                             urls[engine], plan, args))
                rec.events.clear()
    return report(floor, runs, plan, args, version)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=None,
                        help="callbacks per run (default: --rate x --span)")
    parser.add_argument("--span", type=float, default=None,
                        help="seconds over which the agreed times are spread (default 180, "
                             "or --callbacks / --rate)")
    parser.add_argument("--rate", type=float, default=ISSUE_RATE,
                        help=f"callbacks per hour when not both of the above are given "
                             f"(default {ISSUE_RATE}, the issue's)")
    parser.add_argument("--agents", type=int, default=20, choices=range(1, len(AGENTS) + 1),
                        metavar=f"1..{len(AGENTS)}")
    parser.add_argument("--talk", type=float, default=2.0, help="customer talk time, s")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="final rows of past days in the table before the run")
    parser.add_argument("--window", type=float, default=900.0,
                        help="each callback's window after its agreed time, s (5 min..8 h)")
    parser.add_argument("--lead", type=float, default=20.0,
                        help="s from booking to the first agreed time (+10 ms per callback)")
    parser.add_argument("--engines", type=lambda s: s.split(","),
                        default=["sqlite", "postgresql"], help="sqlite,postgresql")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor run")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if not set(args.engines) <= {"sqlite", "postgresql"}:
        parser.error("--engines: sqlite and/or postgresql")
    if args.callbacks is None:
        args.span = 180.0 if args.span is None else args.span
        args.callbacks = max(1, round(args.rate * args.span / 3600))
    elif args.span is None:
        args.span = args.callbacks * 3600 / args.rate
    if not 1 <= args.callbacks <= 10_000:
        parser.error("--callbacks: 1..10000 (the bed has 10000 scripted customers)")
    if not 300 <= args.window <= 8 * 3600:
        parser.error("--window: 300..28800 s (the booking rule's window)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_bench(
        "nohold-bench-agreed-", args.keep,
        lambda: start_cb_box(agents=args.agents, offer_every=OFFER_EVERY,
                             offer_after=OFFER_EVERY),
        lambda box, work, running: bench(box, work, args, running))


if __name__ == "__main__":
    sys.exit(main())
