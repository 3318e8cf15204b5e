"""The callbacks end-to-end bed, shared by tests/e2e/test_callbacks.py and
tests/e2e/test_callback_faults.py.

A sandbox per test: queue cb-billing (agents are Local channels of [cb-agents] that
answer and stay, paused over AMI until the test wants them) offers a callback as
app_queue's periodic announcement (nohold's callback_offer prompt, 2 s after
joining, every 5 s; `context = nohold-callback-offer`). Callers enter through
nohold's own [nohold-callback-queue]. Customers are extensions of [cb-customers]:
48601000001 answers after 1 s of ringing and stays, 48601000002 is busy,
48601000003 never answers, 48601000004 rejects, 486010090NN (short_call(n)) answer
after 0.5 s of ringing and hang up 1 s later, 4860102NNNN (scripted_call(n)) answer
after 0.5 s and talk for the global CB_TALK seconds (the benchmarks' customers),
48601000005 is an answering machine (answers after 0.5 s and speaks a long greeting).

Everything asserted comes from Asterisk's own events (ARI channel/bridge events,
AMI with timestampevents, counted and ordered) or from nohold's database; waits
are on events with bounded timeouts, never sleeps.
"""

# ruff: noqa: E501  (dialplan lines)
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from nohold.callbackdb.callbacks import AttemptRecord, CallbackRecord, CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.config import PromptSettings
from nohold.prompts import build_prompts
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ScriptedCaller, TimelineEntry
from tests.support.asterisk_events import AMI_TIMESTAMPS, AsteriskEvents, Ev, ami
from tests.support.nohold_process import Clock, NoholdProcess, run_cli, write_config

QUEUE = "cb-billing"
AGENT = "Local/cba@cb-agents"
APP = "nohold-callback"
PLACEHOLDER = "Local/s@nohold-callback-placeholder"
START_DELAY = 2
FREQUENCY = 5
RETRY_AFTER = 10
# Customers (Polish mobiles, dialled as E.164 digits: dial_format = "e164_digits").
ANSWERS, BUSY, NO_ANSWER, REJECTS = "601000001", "601000002", "601000003", "601000004"
MACHINE = "601000005"
# Agents: the first is the one every test has; more join with `agents=` (Agent B...).
AGENTS = tuple(f"Local/cb{c}@cb-agents" for c in "abcdefghijklmnopqrst")


def short_call(n: int) -> str:
    """The n-th customer who answers after 0.5 s of ringing and hangs up 1 s later."""
    return f"6010090{n:02d}"


def scripted_call(n: int) -> str:
    """The n-th (0-9999) customer who answers after 0.5 s of ringing and talks for the
    global CB_TALK seconds (2 unless set, e.g. over AMI Setvar), then hangs up."""
    return f"60102{n:04d}"


def queues_conf(agents: int = 1, offer_every: int = FREQUENCY,
                offer_after: int = START_DELAY, offer: str = "callback_offer") -> str:
    """The queue with `agents` members, offering after `offer_after` s and then every
    `offer_every` s. app_queue rings
    no agent for a caller while it plays them the offer (about 6 s here), placeholders
    included: with the tests' 5 s the queue serves about one caller at a time, fine for
    the flows, not for throughput (the two-node test and the benchmark use more)."""
    members = "\n".join(f"member => {a},0,Agent {chr(ord('A') + i)}"
                        for i, a in enumerate(AGENTS[:agents]))
    queues = QUEUES.replace(f"member => {AGENT},0,Agent A", members)
    if agents > 1:
        # ringall would ring every free agent for each caller (they all answer at once,
        # one wins): several callers are served one after another, not side by side.
        queues = queues.replace("strategy = ringall", "strategy = rrmemory")
    return (queues
            .replace("@@PROMPTS@@/callback_offer\n", f"@@PROMPTS@@/{offer}\n")
            .replace(f"periodic-announce-frequency = {FREQUENCY}\n",
                     f"periodic-announce-frequency = {offer_every}\n")
            .replace(f"periodic-announce-startdelay = {START_DELAY}\n",
                     f"periodic-announce-startdelay = {offer_after}\n"))


QUEUES = f"""
[{QUEUE}]
strategy = ringall
musicclass = default
timeout = 5
retry = 1
wrapuptime = 0
ringinuse = no
joinempty = yes
leavewhenempty = no
announce-frequency = 0
announce-holdtime = no
announce-position = no
min-announce-frequency = 0
periodic-announce = @@PROMPTS@@/callback_offer
periodic-announce-startdelay = {START_DELAY}
periodic-announce-frequency = {FREQUENCY}
announce-to-first-user = yes
context = nohold-callback-offer
member => {AGENT},0,Agent A
"""

DIALPLAN = """
[cb-callers]
; A caller of queue cb-billing, answered first (an ARI originate gives up on an
; unanswered Local channel after 30 s), entering as an admin's dialplan would.
exten => s,1,Answer()
 same => n,Goto(nohold-callback-queue,cb-billing,1)

[cb-agents]
; The queue's agents: answer and stay on the call until the other side hangs up;
; busy while the AstDB key cbtest/closed exists (it survives an Asterisk restart).
exten => _cb[a-t],1,GotoIf(${DB_EXISTS(cbtest/closed)}?closed)
 same => n,Answer()
 same => n,UserEvent(CbAgent,agent: ${EXTEN},cid: ${CALLERID(num)})
 same => n,Wait(600)
 same => n,Hangup()
 same => n(closed),Busy(5)

[cb-customers]
; Who nohold calls back (outbound = "context:cb-customers").
exten => 48601000001,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,UserEvent(CbCustomerAnswered,number: ${EXTEN},cid: ${CALLERID(num)},cname: ${CALLERID(name)})
 same => n,Wait(600)
 same => n,Hangup()
exten => 48601000002,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Busy(10)
exten => 48601000003,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(600)
exten => 48601000004,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Hangup(21)
exten => _486010090XX,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(0.5)
 same => n,Answer()
 same => n,UserEvent(CbCustomerAnswered,number: ${EXTEN},cid: ${CALLERID(num)},cname: ${CALLERID(name)})
 same => n,Wait(1)
 same => n,Hangup()
exten => 48601000005,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(0.5)
 same => n,Answer()
 same => n,UserEvent(CbCustomerAnswered,number: ${EXTEN},cid: ${CALLERID(num)},cname: ${CALLERID(name)})
 same => n,Playback(@@PROMPTS@@/callback_offer)
 same => n,Wait(600)
exten => _4860102XXXX,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(0.5)
 same => n,Answer()
 same => n,UserEvent(CbCustomerAnswered,number: ${EXTEN},cid: ${CALLERID(num)},cname: ${CALLERID(name)})
 same => n,Wait(${IF($["${GLOBAL(CB_TALK)}" = ""]?2:${GLOBAL(CB_TALK)})})
 same => n,Hangup()
"""

AMD_DIALPLAN = """
[cb-amd-out]
; An admin's outbound route with answering-machine detection (callbacks.amd = true).
exten => _X.,1,Dial(Local/${EXTEN}@cb-customers,20,U(nohold-callback-amd))
 same => n,Hangup()
"""

CALLBACKS = {
    "enabled": True,
    "queues": [QUEUE],
    "caller_id": "+48221234567",
    "caller_name": "Example Net",
    "allowed_numbers": ["PL:mobile", "PL:fixed_line"],
    "outbound": "context:cb-customers",
    "dial_format": "e164_digits",
    "ring_timeout": 15,
    "retry_after": RETRY_AFTER,
    "max_attempts": 2,
    "lease": 5,
    # What the queue above does (nohold may check the queue against these).
    "offer_after": START_DELAY,
    "offer_every": FREQUENCY,
}


# The HTTP API's token in beds that serve it (open_bed(http=True)).
HTTP_TOKEN = "e2e-http-token-0123456789-abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the bed ----------------------------------------------------------------------------
@dataclass
class Bed:
    box: Sandbox
    rec: AsteriskEvents
    nohold: NoholdProcess
    store: CallbackStore
    callers: list[ScriptedCaller] = field(default_factory=list)
    agents: tuple[str, ...] = (AGENT,)
    workdir: Path = Path()
    others: list[NoholdProcess] = field(default_factory=list)
    database_url: str = ""
    http_base: str = ""  # the HTTP API of `nohold run`, when open_bed(http=True)

    async def api(self, method: str, path: str, body: Any = None,
                  token: str | None = HTTP_TOKEN) -> tuple[int, Any]:
        """One request to nohold's HTTP API, as an agent's tool would make it."""
        assert self.http_base, "open_bed(http=True) serves the HTTP API"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http, http.request(
                method, self.http_base + path, json=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            return resp.status, await resp.json()

    async def pause(self, paused: bool) -> None:
        """Every agent of the queue paused (or not)."""
        for agent in self.agents:
            mark = len(self.rec.events)
            await self.rec.action("QueuePause", Queue=QUEUE, Interface=agent,
                                  Paused="true" if paused else "false")
            await self.rec.wait(ami("QueueMemberPause", Queue=QUEUE, Interface=agent,
                                    Paused="1" if paused else "0"), 10, mark,
                                what=f"QueueMemberPause {agent} paused={paused}")

    async def another_nohold(self, name: str, overrides: dict[str, Any] | None = None,
                             config: Path | None = None) -> NoholdProcess:
        """Another `nohold run`, ready: with `config` (e.g. the first one's, after a
        kill), or a config of its own on the same database (its own ARI apps, so two
        can serve one Asterisk)."""
        if config is None:
            sections: dict[str, Any] = {
                "callbacks": CALLBACKS, "ari": {"app": f"nohold-ivr-{name}"},
                "database": {"outbox": str(self.workdir / f"outbox-{name}"),
                             **({"url": self.database_url} if self.database_url else {})}}
            for section, values in (overrides or {}).items():
                sections[section] = {**sections.get(section, {}), **values}
            config = write_config(self.box, self.workdir / f"nohold-{name}.toml", sections)
        app = _app_of(config)
        proc = NoholdProcess(config=config, log_path=self.workdir / f"nohold-{name}.log",
                             app=app)
        self.others.append(proc)
        proc.start()
        await proc.wait_ready(self.box)
        return proc

    def logs(self) -> str:
        return "".join(f"\n--- {p.log_path.name} (tail):\n{p.log()[-6000:]}"
                       for p in (self.nohold, *self.others))

    async def call(self, caller_id: str | None) -> tuple[ScriptedCaller, Ev]:
        """A caller in the queue: returns it and its QueueCallerJoin."""
        caller = ScriptedCaller(self.box, context="cb-callers", exten="s", caller_id=caller_id)
        self.callers.append(caller)
        await caller.dial()
        join = await self.rec.wait(ami("QueueCallerJoin", Queue=QUEUE,
                                       Uniqueid=caller.dialplan_channel_id), 15,
                                   what="the caller's QueueCallerJoin")
        return caller, join

    async def hears_offer(self, caller: ScriptedCaller, join: Ev) -> Ev:
        """The periodic announcement starts: app_queue stops the caller's music for it,
        and its verbose log names our prompt on the caller's channel."""
        stop = await self.rec.wait(
            lambda e: ami("MusicOnHoldStop", Uniqueid=caller.dialplan_channel_id)(e)
            and e.seq > join.seq, START_DELAY + 8, what="the offer (MusicOnHoldStop)")
        channel = join.data["Channel"]
        await wait_until(lambda: any(channel in ln and "callback_offer" in ln
                                     for ln in log_lines(self.box, "Playing")), 10,
                         f"app_queue playing callback_offer to {channel}:\n"
                         + self.box.log_tail(30))
        return stop

    async def take_offer(self, caller: ScriptedCaller, join: Ev) -> Ev:
        """Hears the offer, presses 1: leaves the queue into nohold's app."""
        await self.hears_offer(caller, join)
        await caller.press("1")
        leave = await self.rec.wait(ami("QueueCallerLeave", Queue=QUEUE,
                                        Uniqueid=caller.dialplan_channel_id), 10, join.seq,
                                    what="QueueCallerLeave after 1")
        await caller.wait_dialplan_app("Stasis", f"{APP},offer,{QUEUE},", timeout=10)
        return leave

    async def request(self, caller_id: str) -> tuple[ScriptedCaller, Ev]:
        """A whole request with the caller id as the number: offer, 1, read back, 1,
        the promise, the end of the call."""
        caller, join = await self.call(caller_id)
        await self.take_offer(caller, join)
        await caller.wait_for_playback("/callback_confirm", timeout=20)
        await caller.press("1")
        await caller.wait_for_playback("/callback_minutes", timeout=20)
        await caller.wait_hungup(timeout=20)
        return caller, join

    def arrival(self, caller: ScriptedCaller) -> Ev:
        """When the caller entered nohold's queue context (the dialplan's NOHOLD_JOINED,
        whole seconds): their arrival, before any offer at the door and the queue."""
        found = self.rec.find(ami("Newexten", Uniqueid=caller.dialplan_channel_id,
                                  Context="nohold-callback-queue"))
        assert found, f"no Newexten into nohold-callback-queue:\n{self.rec.dump()}"
        return found[0]

    async def rows(self) -> list[CallbackRecord]:
        return await self.store.find()

    async def row_becomes(self, callback_id: int, pred: Callable[[CallbackRecord], bool],
                          timeout: float, what: str) -> CallbackRecord:  # noqa: ASYNC109
        """Polls nohold's database (bounded) until the row satisfies `pred`."""
        deadline = time.monotonic() + timeout
        row = await self.store.get(callback_id)
        while not (row is not None and pred(row)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"callback {callback_id} not {what} within {timeout:g}s: {row}\n"
                    f"attempts: {await self.store.attempts(callback_id)}\n"
                    f"Asterisk said:\n{self.rec.dump()}\n{self.logs()}")
            await asyncio.sleep(0.2)
            row = await self.store.get(callback_id)
        return row

    async def attempts(self, callback_id: int) -> list[AttemptRecord]:
        return await self.store.attempts(callback_id)

    def context(self) -> str:
        return (f"\n--- Asterisk said:\n{self.rec.dump()}{self.logs()}"
                f"\n--- Asterisk log (tail):\n{self.box.log_tail(60)}")


def log_lines(box: Sandbox, needle: str) -> list[str]:
    try:
        text = box.messages_log.read_text(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if needle in ln]


async def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.1)


def prompt_started(caller: ScriptedCaller, suffix: str, nth: int
                   ) -> Callable[[TimelineEntry], bool]:
    """The `nth` start of a prompt for this caller."""
    def pred(e: TimelineEntry) -> bool:
        return (e.type == "PlaybackStarted" and e.media_uri.endswith(suffix)
                and sum(m.endswith(suffix) for m in caller.playbacks()) == nth)
    return pred


def customer_leg(number: str) -> Callable[[Ev], bool]:
    """ARI ChannelCreated of the leg nohold makes to a customer (the Local ;1)."""
    return lambda e: (e.src == "ari" and e.type == "ChannelCreated"
                      and e.channel_name.startswith(f"Local/48{number}@cb-customers")
                      and e.channel_name.endswith(";1"))


def on_customer(e: Ev) -> bool:
    """Any event on any channel of [cb-customers] (both halves), ARI or AMI."""
    return "@cb-customers" in e.channel_name


def placeholder_of(callback_id: int) -> Callable[[Ev], bool]:
    """Either half of callback `callback_id`'s placeholder (ids are nohold's: `cb-<id>-`;
    its customer legs share the prefix, so the channel name tells them apart)."""
    return lambda e: (e.channel_id.startswith(f"cb-{callback_id}-")
                      and e.channel_name.startswith(PLACEHOLDER))


def _app_of(config: Path) -> str:
    import tomllib
    return str(tomllib.loads(config.read_text()).get("callbacks", {}).get("app", APP))


def start_cb_box(agents: int = 1, offer_every: int = FREQUENCY,
                 offer_after: int = START_DELAY, offer: str = "callback_offer") -> Sandbox:
    """The sandbox of one test (stop it after); prompts built. `offer`: the prompt the
    queue plays as its offer (callback_offer_or_time where callbacks.slots are set)."""
    box = start_sandbox(f"cb-{os.getpid()}", extra_dialplan=DIALPLAN + AMD_DIALPLAN,
                        extra_config={"queues.conf": queues_conf(agents, offer_every,
                                                                offer_after, offer),
                                      "manager.conf": AMI_TIMESTAMPS})
    try:
        build_prompts(PromptSettings(dir=box.prompts_dir))
    except BaseException:
        box.stop()
        raise
    return box


@contextmanager
def running_cb_box(**options: Any) -> Iterator[Sandbox]:
    """start_cb_box(**options) for the length of a block (a test's fixture)."""
    box = start_cb_box(**options)
    try:
        yield box
    finally:
        box.stop()


@asynccontextmanager
async def open_bed(box: Sandbox, tmp_path: Path, callbacks: dict[str, Any] | None = None,
                   agents: int = 1, database_url: str | None = None,
                   sections: dict[str, Any] | None = None,
                   http: bool = False, clock: Clock | None = None) -> AsyncIterator[Bed]:
    """The recorder, the database, every agent paused, and `nohold run` ready
    (`callbacks`: overrides of CALLBACKS; `database_url`: else SQLite in tmp_path;
    `http`: its HTTP API on a free loopback port, with HTTP_TOKEN).
    At the end every nohold process is stopped, and none may have logged a problem."""
    async with AsteriskEvents(box) as rec:
        sections = {**(sections or {}), "callbacks": {**CALLBACKS, **(callbacks or {})}}
        if database_url is not None:
            sections["database"] = {"url": database_url}
        port = free_port() if http else 0
        if http:
            sections["http"] = {"enabled": True, "port": port, "token": HTTP_TOKEN}
        config = write_config(box, tmp_path / "nohold.toml", sections)
        result = await asyncio.to_thread(run_cli, config, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        proc = NoholdProcess(config=config, log_path=tmp_path / "nohold.log", app=APP,
                             clock=clock)
        engine = make_engine(database_url or f"sqlite:///{tmp_path / 'nohold.db'}")
        bed = Bed(box, rec, proc, CallbackStore(engine, "e2e-reader"),
                  agents=AGENTS[:agents], workdir=tmp_path, database_url=database_url or "",
                  http_base=f"http://127.0.0.1:{port}" if http else "")
        try:
            await bed.pause(True)
            proc.start()
            await proc.wait_ready(box)
            yield bed
            for p in (bed.nohold, *bed.others):
                assert p.problems() == [], f"{p.log_path.name}: {p.problems()}" + bed.context()
        finally:
            for caller in bed.callers:
                with contextlib.suppress(Exception):
                    await caller.close()
            for p in (bed.nohold, *bed.others):
                p.stop()
            await engine.dispose()


def near(when: datetime | None, epoch: float, within: float) -> bool:
    return when is not None and abs(when.timestamp() - epoch) <= within


