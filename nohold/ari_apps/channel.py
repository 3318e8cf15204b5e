"""One caller's channel as awaitable steps: play, wait for a key, continue in the dialplan.

Events for the channel arrive through `feed()` in the order Asterisk sent them.
A hang-up at any moment makes the step in progress raise CallerHungUp, which the
flow treats as a normal end, never as an error.

Outbound legs start with `originate()`: the returned `Outbound` is fed the Dial
and ChannelDestroyed events of a channel that is not in Stasis yet (the runtime
routes them by the pre-assigned channel id) and resolves to a typed DialOutcome,
with the Channel once it is answered and enters the app.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nohold.ari_apps.ari_client import AriClient, AriConflict, AriError, AriHttpError, AriNotFound
from nohold.decisions.dial import DialOutcome, final_outcome

log = logging.getLogger(__name__)
T = TypeVar("T")

_GONE_EVENTS = {"StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"}
# How long a failed request waits for the hang-up events that may trail it, before
# the failure counts as the flow's own (a hang-up is not a failure).
GONE_GRACE = 0.5


DialplanLocation = tuple[str, str, int]
"""(context, extension, priority) a channel continues to when it leaves Stasis."""


class CallerHungUp(Exception):
    pass


class _Gone(asyncio.Event):
    """The channel's end: an Event that also calls back, at once, the requests that
    must stop when it is set (Channel._until_gone), so none needs a waiting task."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: set[Callable[[], Any]] = set()

    def set(self) -> None:
        super().set()
        for callback in list(self.callbacks):
            callback()


class Channel:
    def __init__(self, ari: AriClient, event: dict[str, Any]) -> None:
        ch = event["channel"]
        self.ari = ari
        self.id: str = ch["id"]
        # The call's unique id (linkedid), shared by every channel of one call
        # (transfers, Local pairs). ARI's channel object lacks it: see call_id_from().
        self.call_id: str = ch.get("linkedid") or ""
        self.caller: str = (ch.get("caller") or {}).get("number", "") or ""
        self.args: list[str] = list(event.get("args") or [])
        self.keys: asyncio.Queue[str] = asyncio.Queue()
        self.gone = _Gone()
        # The last play() ended in a failed playback with the caller still there
        # (already waited for a hang-up: callers need not wait again).
        self.last_play_failed = False
        # playback id -> its final state ("done", or "failed" e.g. on hang-up)
        self._playbacks: dict[str, asyncio.Future[str]] = {}
        # Those of them Asterisk has accepted (the POST returned): only these can be
        # asked about after a reconnect without mistaking "not yet" for "ended".
        self._accepted: set[str] = set()
        # recording name -> its final LiveRecording (RecordingFinished/Failed)
        self._recordings: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # For legs nohold creates and dials (channels/create + dial): what Asterisk
        # reported, with its own timestamps (ISO 8601) where a measurement needs them.
        self.dialstatus = ""  # the last non-empty Dial status
        self.dialled = False
        self.ringing = asyncio.Event()
        self.up = asyncio.Event()
        self.up_at = ""
        self.ringing_at = ""
        self.entered_bridge_at = ""
        self.cause: int | None = None
        self.tech_cause: int | None = None
        # ChannelDestroyed, the only event with the final cause, comes after StasisEnd
        # and ChannelHangupRequest (which set `gone`).
        self.destroyed = asyncio.Event()
        self.connected = ""  # connected line (who is on the other end), name or number
        self.dial_changed = asyncio.Event()
        # Left alone at shutdown (a conversation in a bridge nohold no longer needs
        # to steer): not handed to the fallback, which for a leg means hanging up.
        self.keep_at_shutdown = False

    # -- events ---------------------------------------------------------------------
    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        snapshot = event.get("channel") if kind != "Dial" else event.get("peer")
        if isinstance(snapshot, dict):
            line = snapshot.get("connected") or {}
            self.connected = line.get("name") or line.get("number") or self.connected
            if snapshot.get("state") == "Up" and not self.up.is_set():
                self.up_at = str(event.get("timestamp", ""))
                self.up.set()
        if kind == "Dial":
            self.dialled = True
            status = str(event.get("dialstatus") or "")
            if status:
                self.dialstatus = status
            if status == "RINGING":
                if not self.ringing.is_set():
                    self.ringing_at = str(event.get("timestamp", ""))
                self.ringing.set()
            self.dial_changed.set()
        elif kind == "ChannelEnteredBridge" and not self.entered_bridge_at:
            self.entered_bridge_at = str(event.get("timestamp", ""))
        elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
            # The hang-up request may carry the specific cause (21 rejected) while
            # the Local channel is destroyed with 16, or the other way round (seen
            # both on 22.10): a specific cause is never overwritten by 0 or 16.
            cause = event.get("cause")
            if cause is not None and (self.cause in (None, 0, 16) or cause not in (0, 16)):
                self.cause = cause
            self.tech_cause = event.get("tech_cause") or self.tech_cause
            if kind == "ChannelDestroyed":
                self.destroyed.set()
        if kind in ("RecordingFinished", "RecordingFailed"):
            recording = event.get("recording", {})
            waiting = self._recordings.pop(str(recording.get("name", "")), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(recording if kind == "RecordingFinished"
                                   else {**recording, "state": "failed"})
        if kind == "ChannelDtmfReceived":
            self.keys.put_nowait(event.get("digit", ""))
        elif kind in ("PlaybackFinished", "PlaybackFailed"):
            playback = event.get("playback", {})
            fut = self._playbacks.pop(playback.get("id", ""), None)
            if fut is not None and not fut.done():
                state = "failed" if kind == "PlaybackFailed" else playback.get("state", "done")
                fut.set_result(state)
        elif kind in _GONE_EVENTS:
            self.gone.set()

    # -- steps ----------------------------------------------------------------------
    async def _until_gone(self, aw: Awaitable[T]) -> T:
        """Await `aw`, but raise CallerHungUp as soon as the channel goes away.

        The channel's end cancels `aw`'s task by a callback, and its result is
        awaited directly: no task waiting for the end and no asyncio.wait, each of
        which cost a loop iteration (~2 ms at 20 calls at once, bench/README.md)
        between Asterisk's answer and the next request."""
        task = asyncio.ensure_future(aw)
        gone = self.gone
        if gone.is_set():
            task.cancel()
            raise CallerHungUp(self.id)
        gone.callbacks.add(task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if gone.is_set() and task.cancelled() and (me is None or me.cancelling() == 0):
                raise CallerHungUp(self.id) from None
            raise
        finally:
            gone.callbacks.discard(task.cancel)

    async def _rest(self, method: str, path: str, **params: Any) -> Any:
        # Awaited directly, not raced against the hang-up: a request is bounded (the
        # client's timeout) and Asterisk answers one for a gone channel with 404/409,
        # while a task to race it costs two loop iterations on the way to the notice
        # (~3 ms each at 20 calls at once, bench/README.md).
        if self.gone.is_set():
            raise CallerHungUp(self.id)
        try:
            return await self.ari.request(method, path, params=params)
        except AriError as exc:
            # A channel leaving Stasis fails the commands queued for it with 500
            # ("Failed to answer channel", "Failed to queue media") or 400, and its
            # hang-up events may reach us a moment after that answer.
            if isinstance(exc, AriNotFound | AriConflict) or await self._gone_within(
                    GONE_GRACE):
                raise CallerHungUp(self.id) from exc
            raise

    async def _gone_within(self, seconds: float) -> bool:
        if self.gone.is_set():
            return True
        try:
            async with asyncio.timeout(seconds):
                await self.gone.wait()
        except TimeoutError:
            return False
        return True

    async def fetch_call_id(self) -> str:
        """For dialplans that do not pass ${CHANNEL(linkedid)} to Stasis()."""
        result = await self._rest("GET", f"/channels/{self.id}/variable",
                                  variable="CHANNEL(linkedid)")
        return str(result.get("value") or self.id)

    async def answer(self) -> None:
        await self._rest("POST", f"/channels/{self.id}/answer")

    async def play(self, media: str | Sequence[str], *, interruptible: bool,
                   hangup_grace: float = 1.0) -> str | None:
        """Play to the end; with `interruptible`, a key press stops it and is returned.
        Several media are one playback, queued at Asterisk at once: whatever another
        task plays on the channel meanwhile (a ring tone) comes after all of them.
        A failed playback waits up to `hangup_grace` seconds for the hang-up events that
        may trail it; 0 for a caller that will retry at once (a retry on a channel that
        is gone fails by itself)."""
        if not isinstance(media, str):
            media = ",".join(media)  # ARI's media parameter takes a list, comma-separated
        playback_id = f"nohold-{uuid.uuid4().hex[:16]}"
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = done
        await self._rest("POST", f"/channels/{self.id}/play/{playback_id}", media=media)
        if not done.done():
            self._accepted.add(playback_id)
        if not interruptible:
            await self._check_finished(await self._until_gone(done), hangup_grace)
            return None
        key_task: asyncio.Future[str] = asyncio.ensure_future(self.keys.get())
        waiting: set[asyncio.Future[Any]] = {done, key_task}
        try:
            await self._until_gone(asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED))
        finally:
            if not key_task.done():
                key_task.cancel()
        if key_task.done() and not key_task.cancelled():
            await self._stop_playback(playback_id)
            return key_task.result()
        await self._check_finished(done.result(), hangup_grace)
        return None

    async def _check_finished(self, state: str, hangup_grace: float) -> None:
        """A playback that failed because the caller left is a hang-up, not a success.
        Asterisk may send that PlaybackFinished before the hang-up events."""
        self.last_play_failed = state != "done"
        if state == "done":
            return
        if self.gone.is_set():
            raise CallerHungUp(self.id)
        if hangup_grace <= 0:
            return  # the caller retries, and says so in its own log line
        try:
            async with asyncio.timeout(hangup_grace):
                await self.gone.wait()
        except TimeoutError:
            log.warning("playback_failed channel=%s state=%s", self.id, state)
            return
        raise CallerHungUp(self.id)

    async def stop_playbacks(self) -> None:
        """Before handing the channel on: ARI's continue waits behind a running playback."""
        for playback_id in list(self._playbacks):
            await self._stop_playback(playback_id)

    async def _stop_playback(self, playback_id: str) -> None:
        self._playbacks.pop(playback_id, None)
        try:
            await self.ari.request("DELETE", f"/playbacks/{playback_id}")
        except (AriNotFound, AriConflict):
            pass  # finished on its own meanwhile, or the channel is gone
        except AriHttpError as exc:
            # Best effort: a playback Asterisk will not stop (e.g. one still queued
            # behind another) must not end the call that wanted it stopped (a
            # callback's customer was hung up on answer by this, then dialled again).
            log.warning("playback_stop_refused channel=%s playback=%s status=%s error=%s",
                        self.id, playback_id, exc.status, exc.message)

    async def recheck_playbacks(self) -> None:
        """After a reconnect: a PlaybackFinished sent while the socket was down reached
        nobody (Asterisk does not replay events), and the step waiting for it would hold
        the caller in silence forever. A playback Asterisk no longer knows has ended;
        its final state is lost, so "done" (the notice's own clock still judges it)."""
        for playback_id in list(self._accepted):
            fut = self._playbacks.get(playback_id)
            if fut is None or fut.done():
                self._accepted.discard(playback_id)
                continue
            try:
                await self.ari.request("GET", f"/playbacks/{playback_id}")
            except AriNotFound:
                log.info("playback_ended_unseen channel=%s playback=%s", self.id, playback_id)
                self._accepted.discard(playback_id)
                self._playbacks.pop(playback_id, None)
                fut.set_result("done")

    async def record(self, name: str, *, max_seconds: int, max_silence: int,
                     fmt: str = "wav", terminate_on: str = "#", beep: bool = True,
                     finish_grace: float = 3.0) -> Recorded:
        """Record what the caller says into Asterisk's recording directory as
        `name`.`fmt`, until `max_silence` seconds of silence, `terminate_on`, `max_seconds`
        or the hang-up. A hang-up is not an error here: what was said before it is kept
        (`Recorded.hung_up`). An existing recording of that name is never overwritten."""
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._recordings[name] = done
        try:
            await self._rest("POST", f"/channels/{self.id}/record", name=name, format=fmt,
                             maxDurationSeconds=max_seconds, maxSilenceSeconds=max_silence,
                             ifExists="fail", beep=beep, terminateOn=terminate_on)
            # Not _until_gone: after a hang-up Asterisk still closes the file and says so.
            waiter = asyncio.ensure_future(asyncio.shield(done))
            gone = asyncio.ensure_future(self.gone.wait())
            try:
                await asyncio.wait({waiter, gone}, timeout=max_seconds + 10.0,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not done.done() and gone.done():
                    await asyncio.wait({waiter}, timeout=finish_grace)
            finally:
                waiter.cancel()
                gone.cancel()
        finally:
            self._recordings.pop(name, None)
        if done.done():
            final = done.result()
            return Recorded(name, fmt, str(final.get("state", "done")),
                            _seconds(final.get("duration")), self.gone.is_set())
        # No final event (the channel left Stasis first): Asterisk's store says whether
        # a file was kept; how long it is stays unknown.
        state = "unknown"
        try:
            await self.ari.request("GET", f"/recordings/stored/{name}")
            state = "stored"
        except AriNotFound:
            state = "missing"
        return Recorded(name, fmt, state, None, self.gone.is_set())

    async def next_key(self, timeout: float) -> str | None:
        try:
            return await self._until_gone(_within(self.keys.get(), timeout))
        except TimeoutError:
            return None

    async def collect(self, max_digits: int, timeout: float, first: str | None = None) -> str:
        """Digits until '#', `max_digits`, or `timeout` seconds of silence."""
        entered = ""
        key = first
        while True:
            if key is None:
                key = await self.next_key(timeout)
            if key is None or key == "#":
                return entered
            entered += key
            if len(entered) >= max_digits:
                return entered
            key = None

    def discard_keys(self) -> list[str]:
        dropped = []
        while not self.keys.empty():
            dropped.append(self.keys.get_nowait())
        return dropped

    async def set_vars(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            await self._rest("POST", f"/channels/{self.id}/variable", variable=name, value=value)

    async def get_var(self, name: str) -> str | None:
        """The variable's value, or None when it is not set.

        ARI answers 404 both for "no such variable" and "no such channel": on a 404
        the channel itself is looked up, and only its absence is a hang-up."""
        if self.gone.is_set():
            raise CallerHungUp(self.id)
        try:
            result = await self._until_gone(
                self.ari.request("GET", f"/channels/{self.id}/variable", params={"variable": name})
            )
        except AriNotFound:
            try:
                await self._until_gone(self.ari.request("GET", f"/channels/{self.id}"))
            except AriNotFound as exc:
                raise CallerHungUp(self.id) from exc
            return None
        return str((result or {}).get("value", ""))

    async def dial(self, timeout: float = 0) -> None:
        """Dial a channel made with channels/create (ARI `dial`); 0: no ring timeout
        (a placeholder waits as long as the queue keeps it)."""
        params: dict[str, Any] = {"timeout": int(timeout)} if timeout > 0 else {}
        await self._rest("POST", f"/channels/{self.id}/dial", **params)

    def outcome(self) -> DialOutcome:
        """What became of a dialled leg, from what Asterisk said so far."""
        if self.up.is_set():
            return DialOutcome.ANSWERED
        return final_outcome(dialstatus=self.dialstatus, cause=self.cause,
                             tech_cause=self.tech_cause, dialled=self.dialled)

    async def hangup(self, reason: str = "normal") -> None:
        """Hang the channel up. Already gone (404) is success: the goal is reached,
        and hang-ups race with the far end's all the time."""
        try:
            await self.ari.request("DELETE", f"/channels/{self.id}", params={"reason": reason})
        except AriNotFound:
            log.debug("hangup_already_gone channel=%s", self.id)

    async def continue_on(self) -> None:
        """Back to the dialplan at the priority after Stasis()."""
        await self._rest("POST", f"/channels/{self.id}/continue")

    async def continue_to(self, context: str, exten: str, priority: int = 1) -> None:
        await self._rest(
            "POST",
            f"/channels/{self.id}/continue",
            context=context,
            extension=exten,
            priority=priority,
        )


@dataclass(frozen=True)
class Recorded:
    """A recording's end, as Asterisk reported it."""

    name: str
    format: str
    state: str  # done | failed | canceled | stored (no event, file kept) | missing
    duration: float | None  # seconds of sound Asterisk kept (trailing silence trimmed)
    hung_up: bool  # the caller was gone when it ended


async def _within(aw: Awaitable[T], timeout: float) -> T:
    async with asyncio.timeout(timeout):
        return await aw


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


async def hand_over(ari: AriClient, channel_id: str, where: DialplanLocation | None) -> None:
    """Send a channel in Stasis on to `where` (None: hang it up), by id alone, so it
    also works for a channel whose Channel object died with an earlier process.
    Raises CallerHungUp when it is gone (404) or no longer in Stasis (409)."""
    try:
        if where is None:
            await ari.request("DELETE", f"/channels/{channel_id}")
            return
        context, exten, priority = where
        await ari.request("POST", f"/channels/{channel_id}/continue",
                          params={"context": context, "extension": exten, "priority": priority})
    except AriHttpError as exc:
        if exc.status in (404, 409):  # gone, or no longer ours: nothing left to do
            raise CallerHungUp(channel_id) from exc
        raise


# -- outbound ---------------------------------------------------------------------------

# After the ring timeout Asterisk still needs a moment to destroy the channel and
# send ChannelDestroyed; past this grace the events are taken as lost.
OUTCOME_GRACE = 15.0

# ARI's answers to an originate that could not even be placed: 400 bad endpoint
# syntax, 422 unknown thing, 500 "Allocation failed" (unknown technology or PJSIP
# endpoint; seen on 22.10, where a previous 409 on the same HTTP thread can turn
# this into a stale 409 "already exists").
_NOT_PLACED = (400, 422, 500)


@dataclass(frozen=True)
class DialResult:
    outcome: DialOutcome
    channel: Channel | None = None  # set when answered: the leg is in the app
    dialstatus: str = ""  # the last Dial status seen
    cause: int | None = None  # ChannelDestroyed.cause (Q.850)
    tech_cause: int | None = None  # ChannelDestroyed.tech_cause (SIP code, 22.7+)
    detail: str = ""

    @property
    def answered(self) -> bool:
        return self.outcome is DialOutcome.ANSWERED


class Outbound:
    """One originated channel until it enters the app (answered) or is destroyed.

    Fed by the runtime through `feed()` (Dial, ChannelDestroyed) and `entered()`
    (StasisStart) in arrival order; `result()` awaits the outcome."""

    def __init__(self, ari: AriClient, channel_id: str, endpoint: str, timeout: float) -> None:
        self.ari = ari
        self.id = channel_id
        self.endpoint = endpoint
        self.timeout = timeout
        self.dialstatus = ""
        self.dialled = False
        self.cancelled = False
        self._result: asyncio.Future[DialResult] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._result.done()

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "Dial":
            self.dialled = True
            status = str(event.get("dialstatus") or "")
            if status:
                self.dialstatus = status
            log.info("originate_dial channel=%s dialstatus=%s", self.id, status or "-")
        elif kind == "ChannelDestroyed":
            cause = event.get("cause")
            tech_cause = event.get("tech_cause")
            outcome = DialOutcome.CANCELLED if self.cancelled else final_outcome(
                dialstatus=self.dialstatus, cause=cause, tech_cause=tech_cause,
                dialled=self.dialled)
            self._resolve(DialResult(outcome, None, self.dialstatus, cause, tech_cause,
                                     str(event.get("cause_txt") or "")))

    def entered(self, ch: Channel) -> None:
        """StasisStart: only an answered channel enters the app."""
        self._resolve(DialResult(DialOutcome.ANSWERED, ch, self.dialstatus or "ANSWER"))

    def fail(self, outcome: DialOutcome, detail: str) -> None:
        self._resolve(DialResult(outcome, dialstatus=self.dialstatus, detail=detail))

    def _resolve(self, result: DialResult) -> None:
        if self._result.done():
            return
        log.info("originate_outcome channel=%s endpoint=%s outcome=%s dialstatus=%s cause=%s "
                 "tech_cause=%s", self.id, self.endpoint, result.outcome.value,
                 result.dialstatus or "-", result.cause, result.tech_cause)
        self._result.set_result(result)

    async def result(self, timeout: float | None = None) -> DialResult:  # noqa: ASYNC109
        """The outcome. Bounded: by default the ring timeout plus OUTCOME_GRACE; if the
        events never come (a dropped WebSocket), the channel is looked up and, if
        still there, hung up, so no call is left ringing that nobody will handle."""
        if timeout is None and self.timeout > 0:
            timeout = self.timeout + OUTCOME_GRACE
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._result)
        except TimeoutError:
            pass
        log.warning("originate_no_outcome channel=%s endpoint=%s waited=%s", self.id,
                    self.endpoint, timeout)
        try:
            await self.ari.request("DELETE", f"/channels/{self.id}")
            detail = "no outcome event in time; hung up"
        except AriNotFound:
            detail = "channel gone, its events were missed"
        except AriError as exc:
            detail = f"no outcome event in time; hang-up failed: {exc}"
        self.fail(DialOutcome.FAILED, detail)
        return self._result.result()

    async def cancel(self, reason: str = "normal") -> None:
        """Stop ringing: the outcome is CANCELLED once the channel is destroyed (or
        ANSWERED, if the answer won the race)."""
        self.cancelled = True
        try:
            await self.ari.request("DELETE", f"/channels/{self.id}", params={"reason": reason})
        except AriNotFound:
            pass


class Originations:
    """Outbound channels not yet in Stasis, by pre-assigned channel id: the runtime
    asks here before treating a StasisStart as a new inbound call."""

    def __init__(self) -> None:
        self._pending: dict[str, Outbound] = {}

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ob: Outbound) -> None:
        if ob.id in self._pending:
            raise ValueError(f"channel id {ob.id} is already being originated")
        self._pending[ob.id] = ob
        # However it ends (events, refusal, no events in time), it stops being pending.
        ob._result.add_done_callback(lambda _: self.discard(ob.id))

    def discard(self, channel_id: str) -> None:
        self._pending.pop(channel_id, None)

    def feed(self, channel_id: str, event: dict[str, Any]) -> bool:
        """Route an event of a pending channel; True if it was one of ours."""
        ob = self._pending.get(channel_id)
        if ob is None:
            return False
        ob.feed(event)
        if ob.done:
            self._pending.pop(channel_id, None)
        return True

    def entered(self, ch: Channel) -> bool:
        """StasisStart of a pending channel: hand it to its Outbound. True if ours."""
        ob = self._pending.pop(ch.id, None)
        if ob is None:
            return False
        ob.entered(ch)
        return True


async def originate(
    ari: AriClient,
    endpoint: str,
    *,
    app: str,
    originations: Originations,
    app_args: Sequence[str] = (),
    channel_id: str | None = None,
    other_channel_id: str | None = None,
    caller_id: str | None = None,
    timeout: float = 30,
    variables: dict[str, str] | None = None,
) -> Outbound:
    """Place an outbound call into `app`; await `.result()` for its DialOutcome.

    The channel id is assigned here (or by the caller) and registered before the
    request, so events that overtake the POST's answer still find their Outbound.
    Raises AriConflict (409) when the id is in use. A request Asterisk refuses
    (unknown endpoint) resolves as UNREACHABLE. Any other AriError propagates, with
    the Outbound still registered: the call may or may not have been placed."""
    channel_id = channel_id or str(uuid.uuid4())
    ob = Outbound(ari, channel_id, endpoint, timeout)
    originations.add(ob)
    params: dict[str, Any] = {
        "endpoint": endpoint,
        "app": app,
        "appArgs": ",".join(app_args) if app_args else None,
        "channelId": channel_id,
        "otherChannelId": other_channel_id,
        "callerId": caller_id,
        "timeout": int(timeout) if timeout > 0 else -1,
    }
    body = {"variables": dict(variables)} if variables else None
    log.info("originate channel=%s endpoint=%s caller_id=%s timeout=%s", channel_id, endpoint,
             caller_id or "-", timeout)
    try:
        await ari.request("POST", "/channels", params=params, json=body)
    except AriConflict:
        originations.discard(channel_id)
        raise
    except AriHttpError as exc:
        originations.discard(channel_id)
        if exc.status not in _NOT_PLACED:
            raise
        log.warning("originate_refused channel=%s endpoint=%s status=%s error=%s", channel_id,
                    endpoint, exc.status, exc.message)
        ob.fail(DialOutcome.UNREACHABLE, f"{exc.status} {exc.message}")
    return ob

