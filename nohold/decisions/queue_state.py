"""What an app_queue queue looks like right now, from AMI events. Pure: no I/O, no clock.

A view is rebuilt from a QueueStatus (+ QueueSummary) snapshot on every AMI
(re)connect and then kept current by applying events one by one. Events are
applied idempotently (a duplicate join is an update, a leave of an unknown caller
is remembered) because the events that race with the snapshot are replayed on top
of it. When an event's own count disagrees with the view, the view is marked
`suspect` so the owner resynchronises instead of trusting it.

A member's `in_call` follows the call's own events (AgentConnect sets it,
AgentComplete clears it) and the snapshot's InCall; a member event's InCall can
set it but not clear it (it lags AgentConnect, see _upsert_member), except a
QueueMemberStatus for an idle device, on which app_queue itself ends the call.

Times: `now` is whatever clock the caller uses (seconds); `joined_at` is on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

# ast_device_state values as app_queue reports them in Status fields.
DEVICE_UNKNOWN = 0
DEVICE_NOT_INUSE = 1
DEVICE_INUSE = 2
DEVICE_BUSY = 3
DEVICE_INVALID = 4
DEVICE_UNAVAILABLE = 5
DEVICE_RINGING = 6
DEVICE_RINGINUSE = 7
DEVICE_ONHOLD = 8

# Uniqueids of callers that left, kept so a join that arrives after its leave
# (replayed or reordered) does not resurrect them. Bounded: memory stays flat.
_GONE_KEEP = 256

CALLER_EVENTS = frozenset({"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon"})
MEMBER_EVENTS = frozenset(
    {
        "QueueMemberAdded",
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberPenalty",
        "QueueMemberRinginuse",
        "QueueMemberRemoved",
    }
)
AGENT_EVENTS = frozenset({"AgentConnect", "AgentComplete"})
QUEUE_EVENTS = CALLER_EVENTS | MEMBER_EVENTS | AGENT_EVENTS


@dataclass(frozen=True)
class QueueCaller:
    uniqueid: str
    channel: str
    position: int
    joined_at: float
    caller_id: str = ""

    def wait(self, now: float) -> float:
        return max(0.0, now - self.joined_at)


@dataclass(frozen=True)
class QueueMember:
    interface: str
    name: str = ""
    status: int = DEVICE_UNKNOWN
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    membership: str = ""
    calls_taken: int = 0

    @property
    def logged_in(self) -> bool:
        # app_queue's own definition (QueueSummary LoggedIn)
        return self.status not in (DEVICE_INVALID, DEVICE_UNAVAILABLE)

    @property
    def available(self) -> bool:
        """app_queue's own definition (QueueSummary Available): an idle device, not paused."""
        return self.status in (DEVICE_NOT_INUSE, DEVICE_UNKNOWN) and not self.paused


@dataclass(frozen=True)
class QueueView:
    name: str
    callers: tuple[QueueCaller, ...] = ()  # ordered by position, positions 1..n
    members: Mapping[str, QueueMember] = field(default_factory=dict)  # by interface
    holdtime: int = 0  # app_queue's running averages, seconds
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    strategy: str = ""
    suspect: bool = False  # an event contradicted the view: resynchronise
    gone: tuple[str, ...] = field(default=(), repr=False)

    @property
    def logged_in(self) -> int:
        return sum(1 for m in self.members.values() if m.logged_in)

    @property
    def available(self) -> int:
        return sum(1 for m in self.members.values() if m.available)

    @property
    def paused(self) -> int:
        return sum(1 for m in self.members.values() if m.paused)

    @property
    def in_call(self) -> int:
        return sum(1 for m in self.members.values() if m.in_call)

    def caller(self, uniqueid: str) -> QueueCaller | None:
        return next((c for c in self.callers if c.uniqueid == uniqueid), None)

    def longest_wait(self, now: float) -> float:
        return max((c.wait(now) for c in self.callers), default=0.0)


def apply_event(
    views: Mapping[str, QueueView], event: Mapping[str, str], now: float
) -> dict[str, QueueView]:
    """The views after one AMI event; events that concern no queue change nothing."""
    name = event.get("Event", "")
    queue = event.get("Queue", "")
    out = dict(views)
    if name not in QUEUE_EVENTS or not queue:
        return out
    view = views.get(queue) or QueueView(name=queue)
    if name == "QueueCallerJoin":
        view = _join(view, event, now)
    elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
        view = _leave(view, event)
    elif name == "QueueMemberRemoved":
        members = dict(view.members)
        members.pop(event.get("Interface", ""), None)
        view = replace(view, members=members)
    elif name in MEMBER_EVENTS:
        view = _upsert_member(view, event)
    elif name == "AgentConnect":
        view = _agent_connect(view, event)
    elif name == "AgentComplete":
        view = _agent_complete(view, event)
    out[queue] = view
    return out


def rebuild(
    status: Iterable[Mapping[str, str]],
    now: float,
    summary: Iterable[Mapping[str, str]] = (),
) -> dict[str, QueueView]:
    """Views from a QueueStatus list (QueueParams, QueueMember, QueueEntry events) and,
    optionally, a QueueSummary list; anything the snapshot does not show is dropped."""
    params: dict[str, QueueView] = {}
    members: dict[str, dict[str, QueueMember]] = {}
    callers: dict[str, list[QueueCaller]] = {}
    for ev in status:
        kind = ev.get("Event", "")
        queue = ev.get("Queue", "")
        if not queue:
            continue
        if kind == "QueueParams":
            params[queue] = QueueView(
                name=queue,
                holdtime=_int(ev.get("Holdtime")),
                talktime=_int(ev.get("TalkTime")),
                completed=_int(ev.get("Completed")),
                abandoned=_int(ev.get("Abandoned")),
                strategy=ev.get("Strategy", ""),
            )
        elif kind == "QueueMember":
            m = _member(ev, None)
            if m.interface:
                members.setdefault(queue, {})[m.interface] = m
        elif kind == "QueueEntry":
            callers.setdefault(queue, []).append(
                QueueCaller(
                    uniqueid=ev.get("Uniqueid", ""),
                    channel=ev.get("Channel", ""),
                    position=_int(ev.get("Position")),
                    joined_at=now - _int(ev.get("Wait")),
                    caller_id=ev.get("CallerIDNum", ""),
                )
            )
    for ev in summary:
        queue = ev.get("Queue", "")
        if ev.get("Event") == "QueueSummary" and queue in params:
            # QueueSummary is read after QueueStatus: its averages are the fresher.
            params[queue] = replace(
                params[queue],
                holdtime=_int(ev.get("HoldTime"), params[queue].holdtime),
                talktime=_int(ev.get("TalkTime"), params[queue].talktime),
            )
    views: dict[str, QueueView] = {}
    for queue in set(params) | set(members) | set(callers):
        base = params.get(queue) or QueueView(name=queue)
        ordered = sorted(callers.get(queue, []), key=lambda c: c.position)
        views[queue] = replace(
            base,
            members=members.get(queue, {}),
            callers=_renumber(ordered),
        )
    return views


def _join(view: QueueView, ev: Mapping[str, str], now: float) -> QueueView:
    uniqueid = ev.get("Uniqueid", "")
    if uniqueid in view.gone:
        return view  # its leave came first
    existing = view.caller(uniqueid)
    others = [c for c in view.callers if c.uniqueid != uniqueid]
    position = _int(ev.get("Position"), len(others) + 1)
    caller = QueueCaller(
        uniqueid=uniqueid,
        channel=ev.get("Channel", ""),
        position=position,
        # a duplicate join keeps the first join time: the caller's wait did not restart
        joined_at=existing.joined_at if existing else now,
        caller_id=ev.get("CallerIDNum", ""),
    )
    # app_queue inserts by priority: the event's position is authoritative, the
    # callers behind it move down one
    index = min(max(position - 1, 0), len(others))
    callers = _renumber([*others[:index], caller, *others[index:]])
    count = ev.get("Count")
    suspect = view.suspect or (count is not None and _int(count, -1) != len(callers))
    return replace(view, callers=callers, suspect=suspect)


def _leave(view: QueueView, ev: Mapping[str, str]) -> QueueView:
    uniqueid = ev.get("Uniqueid", "")
    abandoned = view.abandoned + (1 if ev.get("Event") == "QueueCallerAbandon" else 0)
    gone = view.gone if uniqueid in view.gone else (*view.gone, uniqueid)[-_GONE_KEEP:]
    callers = _renumber([c for c in view.callers if c.uniqueid != uniqueid])
    suspect = view.suspect
    count = ev.get("Count")  # QueueCallerLeave: callers still waiting
    if ev.get("Event") == "QueueCallerLeave" and count is not None:
        suspect = suspect or _int(count, -1) != len(callers)
    return replace(view, callers=callers, abandoned=abandoned, gone=gone, suspect=suspect)


def _upsert_member(view: QueueView, ev: Mapping[str, str]) -> QueueView:
    interface = _interface(ev)
    if not interface:
        return view
    members = dict(view.members)
    old = members.get(interface)
    member = _member(ev, old)
    if old is not None and old.in_call and not member.in_call and not _ends_call(ev):
        # A member event's InCall is app_queue's member->starttime sampled when the event
        # was made, and try_calling() publishes AgentConnect *before* it sets starttime
        # (under the queue lock that the device-state callback holds while it publishes
        # the member's new INUSE status). So "AgentConnect, then QueueMemberStatus InCall=0"
        # is an ordinary order for a call that is up (`queue show`: "in call"): only
        # AgentComplete, or the device going idle, ends the call in the view.
        member = replace(member, in_call=True)
    members[interface] = member
    return replace(view, members=members)


def _ends_call(ev: Mapping[str, str]) -> bool:
    """A QueueMemberStatus for an idle device: app_queue's update_status() ends the
    member's call (update_queue() clears starttime) before it publishes the event."""
    return ev.get("Event") == "QueueMemberStatus" and _int(ev.get("Status"), -1) == DEVICE_NOT_INUSE


def _agent_connect(view: QueueView, ev: Mapping[str, str]) -> QueueView:
    # app_queue's recalc_holdtime(): the first call since the stats began sets it,
    # later ones average (3 * old + new) / 4 in whole seconds
    new = _int(ev.get("HoldTime"))
    first = view.completed + view.abandoned == 0
    holdtime = new if first else (view.holdtime * 3 + new) >> 2
    view = _set_in_call(view, ev.get("Interface", ""), True)
    # the caller's leave normally comes first; this covers a lost or reordered one
    uniqueid = ev.get("Uniqueid", "")
    callers = _renumber([c for c in view.callers if c.uniqueid != uniqueid])
    gone = view.gone if uniqueid in view.gone else (*view.gone, uniqueid)[-_GONE_KEEP:]
    return replace(view, holdtime=holdtime, callers=callers, gone=gone)


def _agent_complete(view: QueueView, ev: Mapping[str, str]) -> QueueView:
    # app_queue's update_queue(): the first completed call sets it, then the same average
    new = _int(ev.get("TalkTime"))
    completed = view.completed + 1
    talktime = new if completed == 1 else (view.talktime * 3 + new) >> 2
    view = _set_in_call(view, ev.get("Interface", ""), False)
    return replace(view, talktime=talktime, completed=completed)


def _set_in_call(view: QueueView, interface: str, in_call: bool) -> QueueView:
    member = view.members.get(interface)
    if member is None:
        return view
    members = dict(view.members)
    members[interface] = replace(member, in_call=in_call)
    return replace(view, members=members)


def _interface(ev: Mapping[str, str]) -> str:
    # events say Interface; QueueStatus's QueueMember says Location (Asterisk 22)
    return ev.get("Interface") or ev.get("Location") or ""


def _member(ev: Mapping[str, str], old: QueueMember | None) -> QueueMember:
    base = old or QueueMember(interface=_interface(ev))
    return QueueMember(
        interface=base.interface,
        name=ev.get("MemberName", ev.get("Name", base.name)),
        status=_int(ev.get("Status"), base.status),
        paused=_flag(ev.get("Paused"), base.paused),
        paused_reason=ev.get("PausedReason", base.paused_reason),
        in_call=_flag(ev.get("InCall"), base.in_call),
        membership=ev.get("Membership", base.membership),
        calls_taken=_int(ev.get("CallsTaken"), base.calls_taken),
    )


def _renumber(callers: Iterable[QueueCaller]) -> tuple[QueueCaller, ...]:
    return tuple(
        c if c.position == i else replace(c, position=i) for i, c in enumerate(callers, 1)
    )


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return default


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes")
