"""The AMI queue-state view against a real Asterisk 22 and real app_queue calls.

Queue [nohold-qstate] (sandbox templates) has two static members, Agent A and
Agent B, Local channels that answer and stay on the call. With A paused and B on
a call (ringinuse = no), every further caller waits. Each step compares the view
with Asterisk's own `queue show` and QueueSummary; waits are on AMI events with
bounded timeouts, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from nohold.ami.client import AmiClient, list_fields
from nohold.ami.queues import QueueMonitor
from nohold.ami.settings import AmiSettings
from nohold.decisions.queue_state import DEVICE_INUSE, QueueView
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ScriptedCaller

pytestmark = pytest.mark.e2e

QUEUE = "nohold-qstate"
AGENT_A = "Local/qs-a@nohold-sandbox-qstate-agents"
AGENT_B = "Local/qs-b@nohold-sandbox-qstate-agents"
WAIT = 20.0


@dataclass
class Shown:
    """What `queue show <queue>` says."""

    calls: int
    holdtime: int
    talktime: int
    completed: int
    abandoned: int
    members: dict[str, tuple[bool, str, bool]]  # interface -> (paused, status text, in call)
    callers: list[str]  # channel names in position order


def queue_show(box: Sandbox) -> Shown:
    out = box.cli(f"queue show {QUEUE}")
    head = re.search(
        rf"^{QUEUE} has (\d+) calls .*\((\d+)s holdtime, (\d+)s talktime\), W:\d+, C:(\d+), "
        r"A:(\d+)",
        out,
        re.M,
    )
    assert head, out
    members: dict[str, tuple[bool, str, bool]] = {}
    for m in re.finditer(r"^\s+\S.*? \((Local/\S+)\)(.*)$", out, re.M):
        states = re.findall(r"\(([^()]*)\)", m.group(2))
        status = next(s for s in states if s in {
            "Not in use", "In use", "Busy", "Invalid", "Unavailable", "Ringing", "Ring+Inuse",
            "On Hold", "Unknown"})
        members[m.group(1)] = (any(s.startswith("paused") for s in states), status,
                               "in call" in states)
    callers = [
        (int(pos), chan)
        for pos, chan in re.findall(r"^\s+(\d+)\. (\S+) \(wait: ", out, re.M)
    ]
    assert [p for p, _ in callers] == list(range(1, len(callers) + 1)), out
    return Shown(
        calls=int(head.group(1)),
        holdtime=int(head.group(2)),
        talktime=int(head.group(3)),
        completed=int(head.group(4)),
        abandoned=int(head.group(5)),
        members=members,
        callers=[c for _, c in callers],
    )


def assert_matches(view: QueueView, shown: Shown) -> None:
    """The view says what Asterisk says: callers in order, members, paused, in use."""
    assert [c.channel for c in view.callers] == shown.callers
    assert [c.position for c in view.callers] == list(range(1, len(shown.callers) + 1))
    assert len(view.callers) == shown.calls
    assert set(view.members) == set(shown.members)
    for interface, (paused, status, in_call) in shown.members.items():
        member = view.members[interface]
        assert member.paused == paused, (interface, member, shown)
        # "(in call)" is app_queue's member->starttime, as QueueStatus's InCall is
        assert member.in_call == in_call, (interface, member, shown)
        assert (member.status == DEVICE_INUSE) == (status == "In use"), (interface, member, shown)
    assert (view.holdtime, view.talktime) == (shown.holdtime, shown.talktime)
    assert (view.completed, view.abandoned) == (shown.completed, shown.abandoned)


async def assert_summary_matches(client: AmiClient, view: QueueView) -> None:
    summary = [
        e for e in list_fields(await client.action("QueueSummary", {"Queue": QUEUE}))
        if e.get("Event") == "QueueSummary"
    ]
    assert len(summary) == 1, summary
    s = summary[0]
    assert (int(s["LoggedIn"]), int(s["Available"]), int(s["Callers"])) == (
        view.logged_in, view.available, len(view.callers)), (s, view)


@pytest.fixture
def own_asterisk() -> Iterator[Sandbox]:
    """A sandbox of this test's own: it gets restarted."""
    box = start_sandbox(f"qstate-{os.getpid()}")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
async def ami(own_asterisk: Sandbox) -> AsyncIterator[tuple[AmiClient, QueueMonitor]]:
    settings = AmiSettings(
        enabled=True, port=own_asterisk.ami_port, user=own_asterisk.ami_user,
        secret=own_asterisk.ami_password, action_timeout=5.0,
    )
    client = AmiClient(settings, backoff_base=0.2, backoff_cap=1.0)
    monitor = QueueMonitor(client, queues=[QUEUE])
    await client.start()
    try:
        yield client, monitor
    finally:
        await monitor.close()
        await client.close()


async def place(box: Sandbox, callers: list[ScriptedCaller]) -> ScriptedCaller:
    caller = ScriptedCaller(box, context="nohold-sandbox-qstate", exten="s")
    callers.append(caller)
    await caller.dial()
    return caller


def q(views: dict[str, QueueView]) -> QueueView:
    return views.get(QUEUE) or QueueView(name=QUEUE)


def talking(view: QueueView, agent: str) -> bool:
    """On a call by both of Asterisk's accounts: AgentConnect (in call) and the
    device state (in use) arrive as separate events in either order, and
    `queue show` reports both, so a view compared with it waits for both."""
    member = view.members[agent]
    return member.in_call and member.status == DEVICE_INUSE


def waiting(view: QueueView) -> list[str]:
    return [c.uniqueid for c in view.callers]


async def test_view_matches_queue_show_through_waits_abandon_and_a_restart(own_asterisk, ami):
    box = own_asterisk
    client, monitor = ami
    callers: list[ScriptedCaller] = []
    try:
        await monitor.wait_resynced(after=0, timeout=WAIT)
        view = q(monitor.snapshot())
        assert set(view.members) == {AGENT_A, AGENT_B}
        assert view.members[AGENT_A].name == "Agent A" and view.callers == ()
        assert_matches(view, queue_show(box))

        await client.action("QueuePause", {"Queue": QUEUE, "Interface": AGENT_A,
                                           "Paused": "true", "Reason": "lunch"})
        await monitor.wait_for(lambda v: q(v).members[AGENT_A].paused, WAIT)
        assert q(monitor.snapshot()).members[AGENT_A].paused_reason == "lunch"

        # The first caller gets Agent B; B stays on the call.
        first = await place(box, callers)
        view = q(await monitor.wait_for(
            lambda v: talking(q(v), AGENT_B) and not q(v).callers, WAIT))
        assert first.dialplan_channel_id not in waiting(view)

        # Three more wait: A paused, B busy.
        c2, c3, c4 = [await place(box, callers) for _ in range(3)]
        expected = [c2.dialplan_channel_id, c3.dialplan_channel_id, c4.dialplan_channel_id]
        view = q(await monitor.wait_for(lambda v: waiting(q(v)) == expected, WAIT))
        assert [c.position for c in view.callers] == [1, 2, 3]
        assert view.callers[0].wait(monitor.now()) >= view.callers[2].wait(monitor.now())
        assert (view.logged_in, view.available, view.paused, view.in_call) == (2, 0, 1, 1)
        assert_matches(view, queue_show(box))
        await assert_summary_matches(client, view)

        # The middle caller gives up: abandoned, and the last moves up to position 2.
        await c3.hangup()
        view = q(await monitor.wait_for(
            lambda v: waiting(q(v)) == [expected[0], expected[2]], WAIT))
        assert [c.position for c in view.callers] == [1, 2]
        assert view.abandoned == 1
        assert_matches(view, queue_show(box))
        await assert_summary_matches(client, view)

        # The first call ends: AgentComplete (talk time), B takes the head of the line.
        await first.hangup()
        view = q(await monitor.wait_for(
            lambda v: q(v).completed == 1 and waiting(q(v)) == [expected[2]]
            and talking(q(v), AGENT_B), WAIT))
        assert_matches(view, queue_show(box))

        # Asterisk restarts under the waiting and talking callers.
        resyncs = monitor.resyncs
        connects = client.connects
        box.cli("core restart now")
        await monitor.wait_for(lambda _: not monitor.fresh, WAIT)
        await asyncio.to_thread(box.wait_fully_booted)
        await monitor.wait_resynced(after=resyncs, timeout=60)
        assert client.connects == connects + 1
        view = q(monitor.snapshot())
        assert view.callers == (), "stale callers from before the restart"
        assert not view.members[AGENT_A].paused and not view.members[AGENT_B].in_call
        assert (view.completed, view.abandoned) == (0, 0)
        assert_matches(view, queue_show(box))

        # And it is live again: events after the restart keep it current.
        for caller in callers:
            with contextlib.suppress(Exception):
                await caller.close()
        callers.clear()
        await client.action("QueuePause", {"Queue": QUEUE, "Interface": AGENT_A,
                                           "Paused": "true"})
        await place(box, callers)
        await monitor.wait_for(lambda v: talking(q(v), AGENT_B), WAIT)
        late = await place(box, callers)
        view = q(await monitor.wait_for(
            lambda v: waiting(q(v)) == [late.dialplan_channel_id], WAIT))
        assert_matches(view, queue_show(box))
        await assert_summary_matches(client, view)
    finally:
        for caller in callers:
            with contextlib.suppress(Exception):
                await caller.close()
