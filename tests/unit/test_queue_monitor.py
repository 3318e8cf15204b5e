"""QueueMonitor's bookkeeping with a stand-in client: events racing a resync, suspect views."""

from __future__ import annotations

import asyncio

from nohold.ami.queues import QueueMonitor


class StubClient:
    """What QueueMonitor uses of AmiClient; QueueStatus answers with `status`, after
    delivering `during` as events (they race the snapshot)."""

    def __init__(self, status, summary=(), during=()):
        self.status, self.summary, self.during = list(status), list(summary), list(during)
        self.ready = True
        self.calls: list[str] = []
        self.handlers, self.ready_handlers, self.lost_handlers = [], [], []

    def on_event(self, h):
        self.handlers.append(h)

    def on_ready(self, h):
        self.ready_handlers.append(h)

    def on_lost(self, h):
        self.lost_handlers.append(h)

    def emit(self, event):
        for h in self.handlers:
            h(event)

    async def action(self, name, fields=None, *, timeout=None):
        self.calls.append(name)
        await asyncio.sleep(0)
        if name == "QueueStatus":
            for ev in self.during:
                self.emit(ev)
            self.during = []
            return [{"Response": "Success"}, *self.status, {"Event": "QueueStatusComplete"}]
        return [{"Response": "Success"}, *self.summary, {"Event": "QueueSummaryComplete"}]


PARAMS = {"Event": "QueueParams", "Queue": "q", "Holdtime": "0", "TalkTime": "0",
          "Completed": "0", "Abandoned": "0"}


def entry(uid, pos):
    return {"Event": "QueueEntry", "Queue": "q", "Uniqueid": uid, "Channel": f"C/{uid}",
            "Position": str(pos), "Wait": "1"}


def join(uid, pos, count):
    return {"Event": "QueueCallerJoin", "Queue": "q", "Uniqueid": uid, "Channel": f"C/{uid}",
            "Position": str(pos), "Count": str(count)}


def leave(uid, count):
    return {"Event": "QueueCallerLeave", "Queue": "q", "Uniqueid": uid, "Position": "1",
            "Count": str(count)}


def uids(monitor):
    return [c.uniqueid for c in monitor.view("q").callers]


async def test_events_during_a_resync_are_applied_after_the_snapshot():
    # the snapshot still shows "a"; "a" left and "c" joined while it was being read
    client = StubClient([PARAMS, entry("a", 1), entry("b", 2)],
                        during=[leave("a", 1), join("c", 2, 2)])
    monitor = QueueMonitor(client, clock=lambda: 100.0)
    await client.ready_handlers[0]()
    assert uids(monitor) == ["b", "c"]
    assert monitor.resyncs == 1 and monitor.fresh
    assert not monitor.view("q").suspect


async def test_a_resync_drops_everything_the_snapshot_does_not_show():
    client = StubClient([PARAMS])
    monitor = QueueMonitor(client)
    client.emit(join("ghost", 1, 1))
    assert uids(monitor) == ["ghost"]
    await client.ready_handlers[0]()
    assert uids(monitor) == []


async def test_a_suspect_view_triggers_one_resync():
    client = StubClient([PARAMS, entry("a", 1), entry("b", 2)])
    monitor = QueueMonitor(client)
    client.emit(join("b", 2, 2))  # Asterisk counts 2, we know of 1: we missed "a"
    client.emit(join("b", 2, 2))
    assert client.calls == []  # scheduled, not run inline from the event callback
    await monitor.wait_resynced(after=0, timeout=5)
    assert client.calls == ["QueueStatus", "QueueSummary"]
    assert uids(monitor) == ["a", "b"] and not monitor.view("q").suspect


async def test_lost_connection_makes_the_view_not_fresh_and_other_queues_are_ignored():
    client = StubClient([PARAMS, {**PARAMS, "Queue": "other"}])
    monitor = QueueMonitor(client, queues=["q"])
    await client.ready_handlers[0]()
    assert set(monitor.snapshot()) == {"q"}
    client.emit({**join("x", 1, 1), "Queue": "other"})
    assert set(monitor.snapshot()) == {"q"}
    assert monitor.fresh
    client.ready = False
    for h in client.lost_handlers:
        h()
    assert not monitor.fresh


def queue_member(iface, status, in_call):
    return {"Event": "QueueMember", "Queue": "q", "Location": iface, "Name": iface,
            "Status": str(status), "InCall": "1" if in_call else "0", "Paused": "0"}


def member_status(iface, status, in_call):
    return {"Event": "QueueMemberStatus", "Queue": "q", "Interface": iface,
            "Status": str(status), "InCall": "1" if in_call else "0", "Paused": "0"}


async def test_a_lagging_member_status_replayed_on_the_snapshot_does_not_end_the_call():
    # QueueStatus read B's starttime (InCall=1); the INUSE QueueMemberStatus published just
    # before starttime was set (InCall=0) reached us while the snapshot was being read
    client = StubClient([PARAMS, queue_member("Local/b@x", 2, True)],
                        during=[member_status("Local/b@x", 2, False)])
    monitor = QueueMonitor(client)
    await client.ready_handlers[0]()
    assert monitor.view("q").members["Local/b@x"].in_call


async def test_the_view_is_the_last_snapshot_after_any_number_of_reconnects():
    client = StubClient([PARAMS])
    monitor = QueueMonitor(client)
    for n in range(1, 4):
        client.status = [PARAMS, queue_member("Local/b@x", 2, n % 2 == 1), entry(f"c{n}", 1)]
        # seen on the old connection before it dropped (the counts agree: no suspect resync)
        client.emit(join(f"stale{n}", min(n, 2), min(n, 2)))
        client.ready = False
        for h in client.lost_handlers:
            h()
        assert not monitor.fresh
        client.ready = True
        await client.ready_handlers[0]()
        assert monitor.resyncs == n and monitor.fresh
        assert uids(monitor) == [f"c{n}"]
        assert monitor.view("q").members["Local/b@x"].in_call == (n % 2 == 1)


async def test_a_wait_cancelled_as_the_state_changes_ends_cancelled_not_timed_out_later():
    """Python 3.11's asyncio.wait_for returned the inner result when the cancel and the
    change met, swallowing the cancel: the wait then ran on to its timeout and died
    unretrieved ("Task exception was never retrieved", seen in the dialler's log)."""
    monitor = QueueMonitor(StubClient([]))
    waiting = asyncio.create_task(monitor.wait_for(lambda views: False, 0.5))
    await asyncio.sleep(0)  # now waiting on the change event
    monitor._changed.set()  # the change and the cancel in the same loop iteration
    waiting.cancel()
    done, _ = await asyncio.wait({waiting}, timeout=2)
    assert done and waiting.cancelled(), "the cancel was swallowed"
