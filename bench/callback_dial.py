"""Callbacks, agent first: how soon is the customer ringing once an agent is up, and how
soon do they talk once they answer? nohold vs. a floor, with history in the database.

Prints figures, asserts nothing. Against a private sandbox Asterisk 22 (the callbacks
end-to-end bed of tests/e2e/callback_bed.py: queue cb-billing, `--agents` agents that
answer at once and stay, customers who answer after 0.5 s of ringing and talk for
`--talk` s) it runs, one after the other:

- floor: bench/bare_bridge_app.py, a bare Stasis app. The benchmark originates each
  agent into it; on StasisStart it makes a bridge, adds the agent, creates the
  customer's channel, adds it and dials it (the ARI steps of nohold's agent-first
  dial, and nothing else). `--calls` calls, `--agents` at once.
- nohold: the real `nohold run`, for each database engine (`--engines`) and each
  history size (`--rows`: completed callbacks with one attempt each, put in the
  database before the run): `--calls` due callbacks, their agents paused until
  nohold stands their placeholders, then all agents freed at once.

Figures, from Asterisk's own event timestamps (ms resolution), seen by one recorder
subscribed to every channel and bridge, the same way for both:

(b) agent up -> customer dialled: ChannelStateChange(Up) of the agent's side in the
    app (nohold: the placeholder's Stasis half, up when app_queue connects an agent;
    floor: the originated agent channel) -> the Dial event that starts the customer's
    leg (dialstatus ""). Also -> ringing (Dial with dialstatus RINGING).
(a) customer answer -> two-way audio: ChannelStateChange(Up) of the customer's leg ->
    the later of it and both legs having entered the same bridge (nohold puts the
    customer's leg in the agent's bridge before dialling it, so this is 0 by
    construction; measured anyway). nohold also stores its own figure per attempt
    (callback_attempts.answer_to_audio_ms), printed beside it.
Throughput: callbacks completed per second of the run.

    .venv/bin/python bench/callback_dial.py                         # everything (minutes)
    .venv/bin/python bench/callback_dial.py --rows 0 --engines sqlite --calls 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from harness import (  # noqa: E402
    Subject,
    cancel_on_sigterm,
    clean_env,
    machine_info,
    percentile,
    run_bench,
    start_process,
    stop_process,
    wait_registered,
)
from sqlalchemy import func, select, text  # noqa: E402

from nohold.callbackdb.callbacks import CallbackStore  # noqa: E402
from nohold.callbackdb.engine import make_engine  # noqa: E402
from nohold.callbackdb.models import Callback  # noqa: E402
from nohold.logs import problem_lines  # noqa: E402
from nohold.sandbox import Sandbox  # noqa: E402
from tests.e2e.callback_bed import (  # noqa: E402
    AGENTS,
    APP,
    CALLBACKS,
    QUEUE,
    Bed,
    open_bed,
    scripted_call,
    start_cb_box,
)
from tests.support.asterisk_events import AsteriskEvents, Ev, ami  # noqa: E402
from tests.support.nohold_process import NoholdProcess, run_cli, write_config  # noqa: E402
from tests.support.postgres import empty_database, postgres_server  # noqa: E402

FLOOR_APP = "bench-bridge"
NOHOLD_AGENT = re.compile(r"^cb-(\d+)-[0-9a-f]{8}$")  # the placeholder's Stasis half
NOHOLD_CUSTOMER = re.compile(r"^cb-(\d+)-a\d+-[0-9a-f]{6}$")
FLOOR_AGENT = re.compile(r"^fl-(\d+)$")
FLOOR_CUSTOMER = re.compile(r"^fl-(\d+)-c$")
OFFER_EVERY = 60


# -- what one run saw ---------------------------------------------------------------------
@dataclass
class Leg:
    """One customer leg, with the times Asterisk stamped on it and its agent."""

    key: str
    agent_up: float | None = None
    dialled: float | None = None
    ringing: float | None = None
    answered: float | None = None
    bridged: float | None = None  # the customer's leg entered the bridge
    agent_bridged: float | None = None
    bridge: str = ""

    @property
    def up_to_dial_ms(self) -> float | None:
        if self.agent_up is None or self.dialled is None:
            return None
        return (self.dialled - self.agent_up) * 1000

    @property
    def up_to_ringing_ms(self) -> float | None:
        if self.agent_up is None or self.ringing is None:
            return None
        return (self.ringing - self.agent_up) * 1000

    @property
    def answer_to_audio_ms(self) -> float | None:
        if None in (self.answered, self.bridged, self.agent_bridged):
            return None
        assert self.answered is not None and self.bridged is not None
        assert self.agent_bridged is not None
        return (max(self.answered, self.bridged, self.agent_bridged) - self.answered) * 1000


@dataclass
class Run:
    label: str
    legs: list[Leg] = field(default_factory=list)
    completed: int = 0
    wall_s: float = 0.0
    stored_ms: list[float] = field(default_factory=list)  # nohold's own answer_to_audio_ms
    problems: list[str] = field(default_factory=list)
    seed_s: float = 0.0


def legs_from(events: list[Ev], agent_re: re.Pattern[str], customer_re: re.Pattern[str]
              ) -> list[Leg]:
    """Pairs each customer leg with the last agent-up of the same call before its dial
    and with the agent that entered the same bridge."""
    ups: dict[str, list[float]] = {}  # call key -> agent-up times
    up_at: dict[str, float] = {}  # channel id -> first Up
    entered: dict[str, tuple[str, float]] = {}  # channel id -> (bridge, first entry)
    agents_in: dict[str, float] = {}  # bridge -> first agent entry
    legs: dict[str, Leg] = {}
    for e in events:
        if e.src != "ari":
            continue
        cid = e.channel_id
        if e.type == "ChannelStateChange" and e.channel.get("state") == "Up":
            up_at.setdefault(cid, e.ts)
            if m := agent_re.match(cid):
                ups.setdefault(m.group(1), []).append(e.ts)
        elif e.type == "ChannelEnteredBridge":
            entered.setdefault(cid, (e.bridge_id, e.ts))
            if agent_re.match(cid):
                agents_in.setdefault(e.bridge_id, e.ts)
        elif e.type == "Dial" and (m := customer_re.match(cid)):
            leg = legs.setdefault(cid, Leg(m.group(1)))
            status = e.data.get("dialstatus", "")
            if status == "" and leg.dialled is None:
                leg.dialled = e.ts
                before = [t for t in ups.get(m.group(1), []) if t <= e.ts]
                leg.agent_up = before[-1] if before else None
            elif status == "RINGING" and leg.ringing is None:
                leg.ringing = e.ts
    for cid, leg in legs.items():
        leg.answered = up_at.get(cid)
        if cid in entered:
            leg.bridge, leg.bridged = entered[cid]
            leg.agent_bridged = agents_in.get(leg.bridge)
    return list(legs.values())


# -- the database -------------------------------------------------------------------------
@contextlib.contextmanager
def databases(engines: list[str], work: Path) -> Iterator[dict[str, str]]:
    """A URL per engine: a fresh SQLite file per run is made by the run; PostgreSQL is
    one throw-away server, its tables dropped before each run."""
    urls = {"sqlite": ""}
    if "postgresql" not in engines:
        yield urls
        return
    with postgres_server() as url:
        urls["postgresql"] = url
        yield urls


async def seed_history(url: str, rows: int) -> None:
    """`rows` completed callbacks (one talked attempt each) in one statement per table,
    copied from a template row the store itself wrote (so the values are in the
    store's own format on either engine), then ANALYZE, as a live database would be."""
    store = CallbackStore(make_engine(url), "history")
    engine = store.engine  # the bench seeds below the store's API
    try:
        if rows:
            now = datetime.now(UTC) - timedelta(days=1)
            template, _ = await store.request(
                call_id="history", number="+48601000009", queue=QUEUE, arrived_at=now,
                now=now, promised=None, expires_at=now + timedelta(hours=4))
            pg = engine.dialect.name == "postgresql"
            series = ("SELECT generate_series(1, :n) AS x" if pg else
                      "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s "
                      "WHERE x < :n) SELECT x FROM s")
            cols = ("call_id, number, queue, state, arrived_at, requested_at, expires_at, "
                    "attempts, requests, owner, outcome, updated_at")
            async with engine.begin() as conn:
                await conn.execute(text(
                    f"INSERT INTO callbacks ({cols}) SELECT 'history-' || s.x, c.number, "
                    f"c.queue, 'completed', c.arrived_at, c.requested_at, c.expires_at, 1, 1, "
                    f"'history', 'talked', c.updated_at FROM ({series}) s, callbacks c "
                    f"WHERE c.id = :template"), {"n": rows - 1, "template": template.id})
                await conn.execute(text(
                    "UPDATE callbacks SET state = 'completed', outcome = 'talked', "
                    "attempts = 1 WHERE id = :template"), {"template": template.id})
                await conn.execute(text(
                    "INSERT INTO callback_attempts (callback_id, attempt, node, agent, "
                    "agent_up_at, customer_ring_at, customer_answer_at, bridged_at, "
                    "ended_at, outcome, cause, answer_to_audio_ms) SELECT id, 1, 'history', "
                    "'Agent A', arrived_at, arrived_at, arrived_at, arrived_at, arrived_at, "
                    "'talked', '', 0 FROM callbacks WHERE owner = 'history' OR id = :t"),
                    {"t": template.id})
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    finally:
        await engine.dispose()


async def due_callbacks(store: CallbackStore, calls: int) -> list[int]:
    """`calls` pending callbacks, callers arrived a minute ago, a millisecond apart."""
    now = datetime.now(UTC)
    ids = []
    for i in range(calls):
        row, new = await store.request(
            call_id=f"bench-{i}", number=f"+48{scripted_call(i)}", queue=QUEUE,
            arrived_at=now - timedelta(seconds=60, milliseconds=calls - i), now=now,
            promised=None, expires_at=now + timedelta(hours=1))
        assert new, row
        ids.append(row.id)
    return ids


async def count_in(store: CallbackStore, ids: list[int], states: tuple[str, ...]) -> int:
    """How many of the run's callbacks are in `states` (by id: the history rows are
    older and would fill any listing)."""
    stmt = select(func.count()).select_from(Callback).where(
        Callback.id.in_(ids), Callback.state.in_(states))
    async with store.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


# -- driving Asterisk ---------------------------------------------------------------------
async def pause_all(rec: AsteriskEvents, agents: tuple[str, ...], paused: bool) -> None:
    for agent in agents:
        mark = len(rec.events)
        await rec.action("QueuePause", Queue=QUEUE, Interface=agent,
                         Paused="true" if paused else "false")
        await rec.wait(ami("QueueMemberPause", Queue=QUEUE, Interface=agent,
                           Paused="1" if paused else "0"), 10, mark, what="QueueMemberPause")


async def standing_placeholders(rec: AsteriskEvents, since: int) -> int:
    joins = rec.find(lambda e: e.src == "ami" and e.type == "QueueCallerJoin"
                     and "nohold-callback-placeholder" in e.channel_name, since)
    leaves = rec.find(lambda e: e.src == "ami" and e.type == "QueueCallerLeave"
                      and "nohold-callback-placeholder" in e.channel_name, since)
    return len(joins) - len(leaves)


async def run_nohold(box: Sandbox, rec: AsteriskEvents, work: Path, label: str, url: str,
                     rows: int, args: argparse.Namespace) -> Run:
    run = Run(label)
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
    await seed_history(url, rows)
    run.seed_s = time.monotonic() - started
    store = CallbackStore(make_engine(url), "bench-reader")
    agents = AGENTS[:args.agents]
    proc = NoholdProcess(config=config, log_path=work / "nohold.log", app=APP)
    try:
        await pause_all(rec, agents, True)
        ids = await due_callbacks(store, args.calls)
        mark = len(rec.events)
        proc.start()
        await proc.wait_ready(box)
        # Placeholders stand (max_waiting_per_agent per agent, the rest wait in the
        # database); then every agent is free at once.
        deadline = time.monotonic() + 30
        while await standing_placeholders(rec, mark) < min(args.calls, len(agents)):
            if time.monotonic() > deadline:
                raise RuntimeError("placeholders did not stand; see " + str(proc.log_path))
            await asyncio.sleep(0.1)
        started = time.monotonic()
        await pause_all(rec, agents, False)
        deadline = time.monotonic() + args.calls * (args.talk + 3) + 120
        while True:
            done = await count_in(store, ids, ("completed", "expired", "cancelled"))
            if done == len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        run.wall_s = time.monotonic() - started
        run.completed = await count_in(store, ids, ("completed",))
        for callback_id in ids:
            for attempt in await store.attempts(callback_id):
                if attempt.answer_to_audio_ms is not None:
                    run.stored_ms.append(attempt.answer_to_audio_ms)
    finally:
        proc.stop()
        await store.engine.dispose()
    run.legs = legs_from(rec.events[mark:], NOHOLD_AGENT, NOHOLD_CUSTOMER)
    run.problems = problem_lines(proc.log_path.read_text(errors="replace"))
    return run


async def run_floor(box: Sandbox, rec: AsteriskEvents, work: Path, args: argparse.Namespace,
                    running: list[subprocess.Popen[bytes]]) -> Run:
    run = Run("floor")
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
        calls = iter(range(args.calls))
        agents = AGENTS[:args.agents]

        async def worker(agent: str) -> None:
            for n in calls:
                channel_id = f"fl-{n}"
                since = len(rec.events)
                await rec.rest("POST", "/channels", endpoint=agent, app=FLOOR_APP,
                               appArgs=f"agent,Local/48{scripted_call(n)}@cb-customers",
                               channelId=channel_id)
                await rec.wait(lambda e, c=channel_id: e.src == "ari"  # type: ignore[misc]
                               and e.type == "ChannelDestroyed" and e.channel_id == c,
                               args.talk + 60, since, what=f"{channel_id} ends")
                run.completed += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(a) for a in agents))
        run.wall_s = time.monotonic() - started
    finally:
        stop_process(proc)
        running.remove(proc)
    run.legs = legs_from(rec.events[mark:], FLOOR_AGENT, FLOOR_CUSTOMER)
    run.problems = problem_lines(subject.log_path.read_text(errors="replace"))
    return run


# -- (c) a scripted day: promises kept? ----------------------------------------------------
@dataclass
class Kept:
    """One callback of the scripted run: its promised window and when it happened
    (the customer's phone rang), in seconds after the promise was made."""

    earliest: float
    latest: float
    rang: float | None

    @property
    def inside(self) -> bool:
        return self.rang is not None and self.earliest <= self.rang <= self.latest


async def run_script(work: Path, args: argparse.Namespace) -> list[Kept]:
    """`--script-agents` agents talk with as many live callers, who hang up after
    `--script-live` s; meanwhile `--script-callers` callers arrive `--script-gap` s
    apart, hear the offer in the queue, take it (1, confirm 1) and hang up; their
    callbacks are then served, each customer talking `--talk` s. The callers' and
    agents' script is the only timing here (the arrival gaps are the script, not waits
    for an outcome)."""
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    box = start_cb_box(agents=args.script_agents)
    try:
        async with open_bed(box, work, {"default_handle_time": args.script_talk + 1.5},
                            agents=args.script_agents) as bed:
            await bed.rec.action("Setvar", Variable="GLOBAL(CB_TALK)",
                                 Value=str(args.script_talk))
            await bed.pause(False)
            live = []
            for i in range(args.script_agents):
                caller, join = await bed.call(scripted_call(9000 + i))
                await bed.rec.wait(ami("AgentConnect", Queue=QUEUE,
                                       Uniqueid=caller.dialplan_channel_id), 15, join.seq,
                                   what="a live caller's agent")
                live.append(caller)
            live_end = time.monotonic() + args.script_live
            requests = []
            for i in range(args.script_callers):
                requests.append(asyncio.create_task(bed.request(scripted_call(i))))
                await asyncio.sleep(args.script_gap)
            await asyncio.gather(*requests)
            await asyncio.sleep(max(0.0, live_end - time.monotonic()))
            for caller in live:
                await caller.hangup()
            return await kept(bed, args)
    finally:
        box.stop()


async def kept(bed: Bed, args: argparse.Namespace) -> list[Kept]:
    rows = [r for r in await bed.rows() if r.call_id]
    assert len(rows) == args.script_callers, rows
    out = []
    for row in rows:
        done = await bed.row_becomes(row.id, lambda r: r.state.value == "completed",
                                     args.script_callers * (args.script_talk + 5) + 120,
                                     "completed")
        assert done.promised_earliest and done.promised_latest, done
        attempts = await bed.attempts(row.id)
        rang = next((a.customer_ring_at for a in attempts if a.customer_ring_at), None)
        made = done.requested_at.timestamp()
        out.append(Kept(done.promised_earliest.timestamp() - made,
                        done.promised_latest.timestamp() - made,
                        rang.timestamp() - made if rang else None))
    return out


def script_report(kept: list[Kept], args: argparse.Namespace) -> str:
    inside = sum(k.inside for k in kept)
    lines = [f"\n(c) promises kept: {args.script_agents} agents busy with live callers for "
             f"{args.script_live:g} s; {args.script_callers} callers arrive {args.script_gap:g} s "
             f"apart and take the offer; customers talk {args.script_talk:g} s",
             f"inside the promised window: {inside}/{len(kept)} "
             f"({100 * inside / max(1, len(kept)):.0f}%)",
             "callback  window (s after the promise)  rang at"]
    for i, k in enumerate(kept, 1):
        rang = f"{k.rang:.0f}" if k.rang is not None else "never"
        lines.append(f"{i:>8}  {k.earliest:>6.0f} .. {k.latest:<6.0f}                "
                     f"{rang:>7}{'' if k.inside else '  OUTSIDE'}")
    return "\n".join(lines)


# -- report -------------------------------------------------------------------------------
def _fmt(values: list[float], pct: float | None = None) -> str:
    if not values:
        return "n/a"
    value = statistics.median(values) if pct is None else percentile(values, pct)
    return f"{value:.0f}"


def _ratio(a: list[float], b: list[float], pct: float | None) -> str:
    if not a or not b:
        return "n/a"
    x = statistics.median(a) if pct is None else percentile(a, pct)
    y = statistics.median(b) if pct is None else percentile(b, pct)
    return f"{x / y:.2f}x" if y else "n/a"


HEADER = ["run", "rows", "seed s", "done", "up->dial p50", "p99", "up->ring p50", "p99",
          "ans->audio p50", "p99", "stored p99", "callbacks/s"]


def row(run: Run, rows: str) -> list[str]:
    dial = [v for leg in run.legs if (v := leg.up_to_dial_ms) is not None]
    ring = [v for leg in run.legs if (v := leg.up_to_ringing_ms) is not None]
    audio = [v for leg in run.legs if (v := leg.answer_to_audio_ms) is not None]
    return [run.label, rows, f"{run.seed_s:.0f}", f"{run.completed}",
            _fmt(dial), _fmt(dial, 99), _fmt(ring), _fmt(ring, 99), _fmt(audio),
            _fmt(audio, 99), _fmt(run.stored_ms, 99) if run.stored_ms else "-",
            f"{run.completed / run.wall_s:.2f}" if run.wall_s else "n/a"]


def ratio_row(run: Run, floor: Run) -> list[str]:
    def dial(r: Run) -> list[float]:
        return [v for leg in r.legs if (v := leg.up_to_dial_ms) is not None]

    def ring(r: Run) -> list[float]:
        return [v for leg in r.legs if (v := leg.up_to_ringing_ms) is not None]

    return [f"  {run.label}/floor", "", "", "", _ratio(dial(run), dial(floor), None),
            _ratio(dial(run), dial(floor), 99), _ratio(ring(run), ring(floor), None),
            _ratio(ring(run), ring(floor), 99), "", "", "",
            f"{(run.completed / run.wall_s) / (floor.completed / floor.wall_s):.2f}x"
            if run.wall_s and floor.wall_s and floor.completed else "n/a"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(floor: Run, runs: list[tuple[Run, int]], args: argparse.Namespace,
           version: str) -> str:
    rows = [row(floor, "-")]
    for run, n in runs:
        rows.append(row(run, f"{n:,}"))
        rows.append(ratio_row(run, floor))
    out = ["", f"callbacks, agent first: {args.calls} callbacks per run, {args.agents} agents "
           f"(so {args.agents} at once), customers answer after 0.5 s and talk {args.talk} s",
           *machine_info(version),
           "up->dial = Asterisk timestamp of the Dial event starting the customer's leg minus "
           "that of the agent side going Up in the app (ms); up->ring: to Dial RINGING",
           "ans->audio = customer leg Up -> both legs in the same bridge (0 when the leg was "
           "bridged before the dial); stored = nohold's own per-attempt figure",
           "rows = completed callbacks (one attempt each) in the database before the run",
           "", table(rows)]
    for run in (floor, *(r for r, _ in runs)):
        missing = sum(leg.up_to_dial_ms is None for leg in run.legs)
        if missing or run.problems:
            out.append(f"\n{run.label}: {missing} legs without agent-up/dial times, "
                       f"{len(run.problems)} error/traceback log lines")
            out.extend(f"  {line}" for line in run.problems[:10])
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------
async def bench(box: Sandbox, work: Path, args: argparse.Namespace,
                running: list[subprocess.Popen[bytes]]) -> str:
    cancel_on_sigterm()
    async with AsteriskEvents(box) as rec:
        await rec.action("Setvar", Variable="GLOBAL(CB_TALK)", Value=str(args.talk))
        info = await rec.ari.check()
        version = str(info.get("system", {}).get("version", "?"))
        if not args.calls:  # (c) alone
            return script_report(await run_script(work / "script", args), args)
        print("floor: running", flush=True)
        floor = await run_floor(box, rec, work / "floor", args, running)
        runs: list[tuple[Run, int]] = []
        with databases(args.engines, work) as urls:
            for engine in args.engines:
                for rows in args.rows:
                    label = f"nohold {engine}"
                    print(f"{label}, {rows:,} rows: running", flush=True)
                    run = await run_nohold(box, rec, work / f"{engine}-{rows}", label,
                                           urls[engine], rows, args)
                    runs.append((run, rows))
                    if args.keep:  # Asterisk's account of the run, to read the figures from
                        (work / f"{engine}-{rows}" / "events.txt").write_text(
                            "\n".join(e.line(rec.t0) for e in rec.events))
                    rec.events.clear()  # the next run's marks start again at 0
    out = report(floor, runs, args, version)
    if args.script_callers:
        print(out, flush=True)  # (c) takes minutes more: what is measured is shown now
        print("(c) scripted run: running", flush=True)
        return script_report(await run_script(work / "script", args), args)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200,
                        help="callbacks per run (0: only the scripted run (c))")
    parser.add_argument("--agents", type=int, default=20, choices=range(1, len(AGENTS) + 1),
                        metavar=f"1..{len(AGENTS)}", help="agents, so callbacks at once")
    parser.add_argument("--talk", type=float, default=2.0, help="customer talk time, s")
    parser.add_argument("--rows", type=lambda s: [int(x) for x in s.split(",")],
                        default=[0, 100_000, 1_000_000], help="history sizes, e.g. 0,100000")
    parser.add_argument("--engines", type=lambda s: s.split(","),
                        default=["sqlite", "postgresql"], help="sqlite,postgresql")
    parser.add_argument("--script-callers", type=int, default=8,
                        help="(c) callers who take the offer (0: skip (c))")
    parser.add_argument("--script-agents", type=int, default=2, help="(c) agents")
    parser.add_argument("--script-gap", type=float, default=3.0,
                        help="(c) seconds between arrivals")
    parser.add_argument("--script-talk", type=float, default=10.0,
                        help="(c) customer talk time, s (the default handle time follows)")
    parser.add_argument("--script-live", type=float, default=30.0,
                        help="(c) seconds the agents talk with live callers first")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    if not set(args.engines) <= {"sqlite", "postgresql"}:
        parser.error("--engines: sqlite and/or postgresql")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The offer after a minute, then every minute: app_queue rings no agent for a
    # caller (placeholders included) while it plays them the offer, so the tests' 2 s
    # and 5 s would measure that.
    return run_bench(
        "nohold-bench-cb-", args.keep,
        lambda: start_cb_box(agents=args.agents, offer_every=OFFER_EVERY,
                             offer_after=OFFER_EVERY),
        lambda box, work, running: bench(box, work, args, running))


if __name__ == "__main__":
    sys.exit(main())
