"""The queue-state view: events applied one by one, and rebuilt from a snapshot."""

from functools import reduce

from nohold.decisions.queue_state import (
    DEVICE_INUSE,
    DEVICE_NOT_INUSE,
    DEVICE_UNAVAILABLE,
    QueueView,
    apply_event,
    rebuild,
)


def join(uid, pos, count=None, queue="q", chan=None):
    ev = {"Event": "QueueCallerJoin", "Queue": queue, "Uniqueid": uid, "Position": str(pos),
          "Channel": chan or f"Local/{uid}", "CallerIDNum": f"cid-{uid}"}
    if count is not None:
        ev["Count"] = str(count)
    return ev


def leave(uid, pos, count=None, queue="q"):
    ev = {"Event": "QueueCallerLeave", "Queue": queue, "Uniqueid": uid, "Position": str(pos)}
    if count is not None:
        ev["Count"] = str(count)
    return ev


def member(iface, status=DEVICE_NOT_INUSE, paused=False, in_call=False, event="QueueMemberStatus",
           queue="q"):
    return {"Event": event, "Queue": queue, "Interface": iface, "MemberName": iface.upper(),
            "Status": str(status), "Paused": "1" if paused else "0",
            "InCall": "1" if in_call else "0", "Membership": "static", "CallsTaken": "0"}


def run(events, now=100.0, views=None):
    return reduce(lambda v, e: apply_event(v, e, now), events, views or {})


def ids(view):
    return [(c.uniqueid, c.position) for c in view.callers]


def test_joins_in_order_get_positions_and_wait_from_now():
    views = apply_event({}, join("a", 1, 1), 10.0)
    views = apply_event(views, join("b", 2, 2), 13.0)
    q = views["q"]
    assert ids(q) == [("a", 1), ("b", 2)]
    assert q.callers[0].wait(20.0) == 10.0 and q.callers[1].wait(20.0) == 7.0
    assert q.callers[0].caller_id == "cid-a"
    assert not q.suspect
    assert q.longest_wait(20.0) == 10.0


def test_leave_renumbers_the_callers_behind():
    q = run([join("a", 1), join("b", 2), join("c", 3), leave("a", 1, 2)])["q"]
    assert ids(q) == [("b", 1), ("c", 2)]
    assert not q.suspect


def test_leave_from_the_middle():
    q = run([join("a", 1), join("b", 2), join("c", 3), leave("b", 2, 2)])["q"]
    assert ids(q) == [("a", 1), ("c", 2)]


def test_join_at_a_priority_position_pushes_the_others_down():
    q = run([join("a", 1), join("b", 2), join("vip", 1, 3)])["q"]
    assert ids(q) == [("vip", 1), ("a", 2), ("b", 3)]


def test_duplicate_join_is_one_caller_and_keeps_the_first_join_time():
    views = apply_event({}, join("a", 1, 1), 10.0)
    views = apply_event(views, join("a", 1, 1), 15.0)
    q = views["q"]
    assert ids(q) == [("a", 1)]
    assert q.callers[0].joined_at == 10.0


def test_leave_before_join_does_not_resurrect_the_caller():
    q = run([leave("a", 1, 0), join("a", 1, 1)])["q"]
    assert q.callers == ()


def test_abandon_counts_and_removes_and_the_leave_after_it_is_harmless():
    q = run([join("a", 1), join("b", 2),
             {"Event": "QueueCallerAbandon", "Queue": "q", "Uniqueid": "a", "Position": "1",
              "OriginalPosition": "1", "HoldTime": "4"},
             leave("a", 1, 1)])["q"]
    assert ids(q) == [("b", 1)]
    assert q.abandoned == 1
    assert not q.suspect


def test_count_that_disagrees_marks_the_view_suspect():
    # we missed a join (e.g. during a reconnect): Asterisk says 2 are waiting
    q = run([join("b", 2, 2)])["q"]
    assert q.suspect
    q2 = run([join("a", 1, 1), join("b", 2, 2), leave("a", 1, 5)])["q"]
    assert q2.suspect


def test_member_added_status_pause_and_removed():
    q = run([member("Local/a@x", event="QueueMemberAdded"),
             member("Local/b@x", event="QueueMemberAdded")])["q"]
    assert q.logged_in == 2 and q.available == 2
    q = run([{"Event": "QueueMemberPause", "Queue": "q", "Interface": "Local/a@x",
              "Paused": "1", "PausedReason": "lunch"}], views={"q": q})["q"]
    a = q.members["Local/a@x"]
    assert a.paused and a.paused_reason == "lunch" and a.name == "LOCAL/A@X"
    assert q.available == 1 and q.paused == 1
    q = run([member("Local/b@x", status=DEVICE_INUSE, in_call=True)], views={"q": q})["q"]
    assert q.available == 0 and q.in_call == 1 and q.logged_in == 2
    # app_queue counts an idle device as available even while it says InCall
    q = run([member("Local/b@x", in_call=True)], views={"q": q})["q"]
    assert q.available == 1
    q = run([member("Local/b@x", status=DEVICE_UNAVAILABLE)], views={"q": q})["q"]
    assert q.logged_in == 1
    q = run([{"Event": "QueueMemberRemoved", "Queue": "q", "Interface": "Local/b@x"}],
            views={"q": q})["q"]
    assert list(q.members) == ["Local/a@x"]


def test_removing_an_unknown_member_is_harmless():
    q = run([{"Event": "QueueMemberRemoved", "Queue": "q", "Interface": "nobody"}])["q"]
    assert q.members == {}


def test_agent_connect_and_complete_keep_app_queue_averages():
    views = {"q": QueueView(name="q", holdtime=8, talktime=20, completed=2)}
    views = run([member("Local/a@x"), join("c1", 1), leave("c1", 1, 0),
                 {"Event": "AgentConnect", "Queue": "q", "Interface": "Local/a@x",
                  "Uniqueid": "c1", "HoldTime": "4", "RingTime": "1"}], views=views)
    q = views["q"]
    assert q.holdtime == (3 * 8 + 4) // 4 == 7
    assert q.members["Local/a@x"].in_call and q.callers == ()
    q = run([{"Event": "AgentComplete", "Queue": "q", "Interface": "Local/a@x",
              "Uniqueid": "c1", "HoldTime": "4", "TalkTime": "40", "Reason": "caller"}],
            views=views)["q"]
    assert q.talktime == (3 * 20 + 40) // 4 == 25
    assert q.completed == 3
    assert not q.members["Local/a@x"].in_call


def test_first_call_sets_the_averages_as_app_queue_does():
    # app_queue: no completed/abandoned call yet -> the hold time is taken as is;
    # the first completed call's talk time likewise (not 1/4 of it)
    q = run([member("Local/a@x"),
             {"Event": "AgentConnect", "Queue": "q", "Interface": "Local/a@x",
              "Uniqueid": "c1", "HoldTime": "6"},
             {"Event": "AgentComplete", "Queue": "q", "Interface": "Local/a@x",
              "Uniqueid": "c1", "HoldTime": "6", "TalkTime": "9"}])["q"]
    assert (q.holdtime, q.talktime, q.completed) == (6, 9, 1)


def test_an_abandon_makes_the_next_hold_time_an_average():
    q = run([join("a", 1),
             {"Event": "QueueCallerAbandon", "Queue": "q", "Uniqueid": "a", "Position": "1"},
             {"Event": "AgentConnect", "Queue": "q", "Interface": "Local/a@x",
              "Uniqueid": "b", "HoldTime": "8"}])["q"]
    assert q.holdtime == 2


def test_agent_connect_removes_a_caller_whose_leave_was_lost():
    q = run([join("c1", 1), join("c2", 2),
             {"Event": "AgentConnect", "Queue": "q", "Interface": "Local/a@x",
              "Uniqueid": "c1", "HoldTime": "3"}])["q"]
    assert ids(q) == [("c2", 1)]


def test_events_of_other_kinds_or_without_queue_change_nothing():
    before = run([join("a", 1)])
    after = run([{"Event": "Newchannel", "Uniqueid": "x"},
                 {"Event": "QueueCallerJoin", "Uniqueid": "y", "Position": "1"}], views=before)
    assert after == before


def test_events_keep_queues_apart():
    views = run([join("a", 1, queue="tech"), join("b", 1, queue="billing")])
    assert ids(views["tech"]) == [("a", 1)] and ids(views["billing"]) == [("b", 1)]


def test_garbage_numbers_do_not_crash():
    q = run([{"Event": "QueueCallerJoin", "Queue": "q", "Uniqueid": "a", "Position": "x",
              "Count": "?"}])["q"]
    assert ids(q) == [("a", 1)] and q.suspect


STATUS = [
    {"Event": "QueueParams", "Queue": "q", "Max": "0", "Strategy": "ringall", "Calls": "2",
     "Holdtime": "5", "TalkTime": "30", "Completed": "3", "Abandoned": "1"},
    # as Asterisk 22 sends them: Location, no Interface
    {"Event": "QueueMember", "Queue": "q", "Name": "Agent A", "Location": "Local/a@x",
     "StateInterface": "Local/a@x", "Membership": "static",
     "Penalty": "0", "CallsTaken": "2", "LastCall": "0", "InCall": "0",
     "Status": "1", "Paused": "1", "PausedReason": "break"},
    {"Event": "QueueMember", "Queue": "q", "Name": "Agent B", "Location": "Local/b@x",
     "Membership": "dynamic", "CallsTaken": "1", "InCall": "1", "Status": "2", "Paused": "0"},
    {"Event": "QueueEntry", "Queue": "q", "Position": "2", "Channel": "Local/y", "Uniqueid": "y",
     "CallerIDNum": "200", "Wait": "3"},
    {"Event": "QueueEntry", "Queue": "q", "Position": "1", "Channel": "Local/x", "Uniqueid": "x",
     "CallerIDNum": "100", "Wait": "9"},
    {"Event": "QueueParams", "Queue": "empty", "Strategy": "rrmemory", "Holdtime": "0",
     "TalkTime": "0", "Completed": "0", "Abandoned": "0"},
    {"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": "6"},
]


def test_rebuild_from_queue_status():
    views = rebuild(STATUS, now=50.0)
    q = views["q"]
    assert ids(q) == [("x", 1), ("y", 2)]
    assert q.callers[0].wait(50.0) == 9 and q.callers[0].caller_id == "100"
    a, b = q.members["Local/a@x"], q.members["Local/b@x"]
    assert (a.name, a.paused, a.paused_reason, a.calls_taken) == ("Agent A", True, "break", 2)
    assert (b.in_call, b.status, b.membership) == (True, DEVICE_INUSE, "dynamic")
    assert (q.holdtime, q.talktime, q.completed, q.abandoned, q.strategy) == (5, 30, 3, 1,
                                                                              "ringall")
    assert (q.logged_in, q.available) == (2, 0)
    assert views["empty"].callers == () and views["empty"].members == {}


def test_rebuild_drops_stale_callers_and_takes_summary_averages():
    stale = run([join("old", 1), join("older", 2)])
    fresh = rebuild(STATUS, now=50.0, summary=[
        {"Event": "QueueSummary", "Queue": "q", "LoggedIn": "2", "Available": "0",
         "Callers": "2", "HoldTime": "6", "TalkTime": "31", "LongestHoldTime": "9"}])
    assert stale["q"].callers and ids(fresh["q"]) == [("x", 1), ("y", 2)]
    assert (fresh["q"].holdtime, fresh["q"].talktime) == (6, 31)
    assert not fresh["q"].suspect


def test_events_after_rebuild_continue_from_the_snapshot():
    views = rebuild(STATUS, now=50.0)
    views = run([join("z", 3, 3), leave("x", 1, 2)], views=views, now=51.0)
    assert ids(views["q"]) == [("y", 1), ("z", 2)]
    assert not views["q"].suspect


def agent_connect(iface, uid="c1"):
    return {"Event": "AgentConnect", "Queue": "q", "Interface": iface, "Uniqueid": uid,
            "HoldTime": "0", "RingTime": "0"}


def test_a_member_status_that_lags_agent_connect_does_not_end_the_call():
    # The order AMI delivered in tests/e2e/test_queue_state.py (/tmp/qstate-failure.log):
    # app_queue's try_calling() publishes AgentConnect and only then sets member->starttime
    # (under the queue lock); its device-state callback, holding that lock, publishes the
    # member's INUSE QueueMemberStatus in between, with InCall computed from starttime = 0.
    # `queue show` and QueueStatus say "in call" from then on: the view must too.
    views = run([member("Local/a@x", event="QueueMemberAdded"), join("c1", 1, 1),
                 leave("c1", 1, 0), agent_connect("Local/a@x"),
                 member("Local/a@x", status=DEVICE_INUSE, in_call=False)])
    a = views["q"].members["Local/a@x"]
    assert a.in_call and a.status == DEVICE_INUSE
    # nor does any other member event sampled in that window (a pause, a penalty)
    views = run([{**member("Local/a@x", status=DEVICE_INUSE, event="QueueMemberPause"),
                  "Paused": "1"}], views=views)
    assert views["q"].members["Local/a@x"].in_call and views["q"].members["Local/a@x"].paused
    # the device going idle does: app_queue's update_status() ends the call then
    views = run([member("Local/a@x", status=DEVICE_NOT_INUSE)], views=views)
    assert not views["q"].members["Local/a@x"].in_call


def test_the_member_status_before_agent_connect_and_in_call_member_events_still_count():
    views = run([member("Local/a@x", event="QueueMemberAdded"),
                 member("Local/a@x", status=DEVICE_INUSE, in_call=False),
                 agent_connect("Local/a@x")])
    assert views["q"].members["Local/a@x"].in_call
    views = run([{"Event": "AgentComplete", "Queue": "q", "Interface": "Local/a@x",
                  "Uniqueid": "c1", "HoldTime": "0", "TalkTime": "5", "Reason": "caller"}],
                views=views)
    assert not views["q"].members["Local/a@x"].in_call
    # a member event that says InCall=1 was sampled while a call was up: believe it
    views = run([member("Local/a@x", status=DEVICE_INUSE, in_call=True)], views=views)
    assert views["q"].members["Local/a@x"].in_call
