"""One long-lived AMI connection over panoramisk's protocol, with our own connection loop.

Why not panoramisk's `Manager`: it reconnects on a fixed delay, pings before the
login after an Asterisk restart, and re-sends every unanswered action once the
new connection sees FullyBooted (RELIABILITY.md). A resent Originate or
QueuePause acts twice. We keep panoramisk's wire format (`AMIProtocol`,
`Action`, `Message`) and own the rest: jittered exponential backoff, a timeout on
every action, and actions in flight when the connection drops fail with
`AmiError` instead of being resent; the caller decides whether to retry.

"Ready" means logged in *and* Asterisk fully booted (the FullyBooted event, which
Asterisk sends right after the login when it is already booted): before that,
modules such as app_queue may not be loaded and their actions fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from nohold.ami.settings import AmiSettings

logger = logging.getLogger(__name__)

EventHandler = Callable[[Mapping[str, str]], None]
ReadyHandler = Callable[[], Awaitable[None]]

# Event classes nohold listens to: system (FullyBooted, Shutdown) and agent (app_queue).
DEFAULT_EVENTS = "system,agent"


class AmiError(Exception):
    """An AMI action failed, or the connection is not (or no longer) there."""


class AmiAuthError(AmiError):
    """Asterisk refused the login: user or secret do not match manager.conf."""


class AmiTimeout(AmiError):
    """No (complete) answer within the timeout."""


class AmiErrorResponse(AmiError):
    """Asterisk answered the action with Response: Error (the message says why)."""

    def __init__(self, text: str, response: Mapping[str, Any]) -> None:
        super().__init__(text)
        self.response = response


def message_fields(message: Mapping[str, Any]) -> dict[str, str]:
    """A panoramisk Message as plain str fields (repeated headers joined by newlines;
    panoramisk's own 'content' body key dropped unless it has text)."""
    out: dict[str, str] = {}
    for key, value in message.items():
        if key == "content" and not value:
            continue
        out[str(key)] = value if isinstance(value, str) else "\n".join(map(str, value))
    return out


def list_fields(result: Message | list[Message]) -> list[dict[str, str]]:
    """The messages of an action result (a list action's events, or the one response)."""
    items = result if isinstance(result, list) else [result]
    return [message_fields(m) for m in items]


def backoff_delay(attempt: int, rand: float, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff: a random delay in [base/2, min(cap, base·2^attempt)].

    Jitter keeps many nohold instances (or a restarted PBX's many clients) from
    reconnecting in lock step; the floor keeps one from spinning.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 16)))
    return max(base / 2, ceiling * rand)


class _Session:
    """The `factory` panoramisk's AMIProtocol calls back into, for one TCP connection."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.forgetable_actions = ("ping", "login")
        # AMIProtocol.close() parks unanswered actions here for a resend; we fail them.
        self.awaiting_actions: list[actions.Action] = []
        self.save_stream = None
        # every unanswered action of this connection, ours to fail when it drops:
        # AMIProtocol.close() forgets half-answered list actions without failing them
        self.pending: set[asyncio.Future[Any]] = set()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.booted = asyncio.Event()
        self.protocol: AMIProtocol | None = None

    def dispatch(self, message: Message) -> None:
        self.client._on_message(self, message)

    def connection_lost(self, exc: object) -> None:
        self.awaiting_actions.clear()  # never resent
        if self.protocol is not None:
            self.protocol.responses.clear()
        for future in list(self.pending):
            if not future.done():
                future.set_exception(
                    AmiError("AMI connection lost before the action was answered (not resent)")
                )
        self.pending.clear()
        if self.lost.done():
            return
        self.lost.set_result(None)
        self.client._on_lost(self, exc)


class AmiClient:
    """`await client.start()`, then `await client.action("QueueStatus")`; `await client.close()`.

    `on_event(handler)` subscribes to every event; `on_ready(coro_fn)` runs after each
    login on a fully booted Asterisk (resynchronise there); `wait_ready()` waits for it.
    """

    def __init__(
        self,
        settings: AmiSettings,
        *,
        events: str = DEFAULT_EVENTS,
        ping_interval: float = 20.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.events = events
        self.ping_interval = ping_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rand = rand
        self._handlers: list[EventHandler] = []
        self._ready_handlers: list[ReadyHandler] = []
        self._lost_handlers: list[Callable[[], None]] = []
        self._session: _Session | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connects = 0  # successful logins so far; tests and logs use it
        self.last_error: AmiError | None = None

    # -- public API ---------------------------------------------------------------

    def on_event(self, handler: EventHandler) -> Callable[[], None]:
        """Call `handler(event)` for every event; returns an unsubscribe function."""
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def on_ready(self, handler: ReadyHandler) -> None:
        """Await `handler()` after every (re)login once Asterisk is fully booted."""
        self._ready_handlers.append(handler)

    def on_lost(self, handler: Callable[[], None]) -> None:
        """Call `handler()` when a logged-in connection drops (state built on it is stale)."""
        self._lost_handlers.append(handler)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            raise AmiTimeout(
                f"AMI not ready after {timeout:.0f}s (last error: {self.last_error})"
            ) from None

    async def start(self) -> None:
        """Run the connection loop in the background (it reconnects forever)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="ami-connection")

    async def connect_once(self) -> None:
        """Connect and log in once, raising AmiAuthError/AmiTimeout/AmiError (for `nohold
        check`); the connection then stays up without reconnecting until close()."""
        self._closing = False
        session = await self._connect()
        await self._login(session)

    async def action(
        self, name: str, fields: Mapping[str, str] | None = None, *, timeout: float | None = None
    ) -> Message | list[Message]:
        """Send one action; its response (a list of messages for list actions, ending with
        the ...Complete event). Raises AmiError on an error response, AmiTimeout, or
        AmiError when the connection drops first: never resent."""
        session = self._session
        if session is None or session.protocol is None or session.lost.done():
            raise AmiError(f"AMI not connected: {name} not sent")
        return await self._send(session, name, fields or {}, timeout)

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        # Python 3.11's wait_for() can swallow a cancellation that arrives just as what
        # it waits for completes (a Ping answered, the connection lost): cancel until
        # the task has really ended, or close() would wait for it forever.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
        session = self._session
        if session is not None and session.protocol is not None and not session.lost.done():
            with contextlib.suppress(AmiError):
                await self._send(session, "Logoff", {}, 1.0)
            session.protocol.close()
            session.connection_lost(None)
        self._ready.clear()
        self._session = None

    # -- connection loop -----------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            session: _Session | None = None
            ended: object = "nohold closed it"
            try:
                session = await self._connect()
                await self._login(session)
                await self._wait_booted(session)
                attempt = 0
                self._ready.set()
                logger.info("ami_ready host=%s port=%s connects=%s", self.settings.host,
                            self.settings.port, self.connects)
                await self._run_ready_handlers(session)
                await self._keepalive(session)
            except AmiAuthError as exc:
                self.last_error = exc
                ended = exc
                logger.error("ami_login_failed user=%s error=%r", self.settings.user, str(exc))
            except (AmiError, OSError) as exc:
                self.last_error = exc if isinstance(exc, AmiError) else AmiError(str(exc))
                ended = self.last_error
                logger.warning("ami_connection_ended host=%s port=%s error=%r",
                               self.settings.host, self.settings.port, str(exc))
            finally:
                self._ready.clear()
                if session is not None and session.protocol is not None:
                    session.protocol.close()
                    session.connection_lost(ended)
            if self._closing:
                break
            delay = backoff_delay(attempt, self._rand(), self.backoff_base, self.backoff_cap)
            attempt += 1
            logger.info("ami_reconnect_in seconds=%.2f attempt=%s", delay, attempt)
            await asyncio.sleep(delay)

    async def _connect(self) -> _Session:
        loop = asyncio.get_running_loop()
        session = _Session(self)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                _, protocol = await loop.create_connection(
                    AMIProtocol, self.settings.host, self.settings.port)
        except TimeoutError:
            raise AmiTimeout(
                f"no TCP connection to AMI at {self.settings.host}:{self.settings.port} "
                f"within {self.settings.connect_timeout:.0f}s"
            ) from None
        except OSError as exc:
            raise AmiError(
                f"cannot connect to AMI at {self.settings.host}:{self.settings.port}: {exc}"
            ) from None
        assert isinstance(protocol, AMIProtocol)
        protocol.factory = session
        protocol.log = logger
        protocol.encoding = "utf8"
        session.protocol = protocol
        self._session = session
        logger.debug("ami_tcp_connected host=%s port=%s", self.settings.host, self.settings.port)
        return session

    async def _login(self, session: _Session) -> None:
        try:
            await self._send(
                session,
                "Login",
                {"Username": self.settings.user, "Secret": self.settings.secret,
                 "Events": self.events},
                self.settings.connect_timeout,
            )
        except AmiErrorResponse as exc:
            raise AmiAuthError(
                f"Asterisk refused AMI login for user {self.settings.user!r} ({exc}): check "
                f"that manager.conf has [{self.settings.user}] with this secret and a "
                "permit= covering nohold's address"
            ) from None
        self.connects += 1
        logger.info("ami_logged_in user=%s connects=%s", self.settings.user, self.connects)

    async def _wait_booted(self, session: _Session) -> None:
        # No timeout: a booting Asterisk may take long; a dropped connection ends the wait.
        booted: asyncio.Future[Any] = asyncio.ensure_future(session.booted.wait())
        lost: asyncio.Future[Any] = session.lost
        try:
            await asyncio.wait({booted, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            booted.cancel()
        if not session.booted.is_set():
            raise AmiError("AMI connection lost before Asterisk was fully booted")

    async def _run_ready_handlers(self, session: _Session) -> None:
        for handler in list(self._ready_handlers):
            if session.lost.done():
                return
            try:
                await handler()
            except AmiError as exc:
                # the handler's own retry/resync policy applies; the connection may be fine
                logger.warning("ami_ready_handler_failed handler=%s error=%r",
                               getattr(handler, "__qualname__", handler), str(exc))
            except Exception:  # noqa: BLE001 - a bug in one handler must not end the loop
                logger.exception("ami_ready_handler_crashed handler=%s",
                                 getattr(handler, "__qualname__", handler))

    async def _keepalive(self, session: _Session) -> None:
        """Until the connection drops: Ping after login only, and a Ping that goes
        unanswered means a half-open TCP connection, which we close."""
        while not self._closing:
            try:
                async with asyncio.timeout(self.ping_interval):
                    await asyncio.shield(session.lost)
                raise AmiError("AMI connection closed")
            except TimeoutError:
                pass
            try:
                await self._send(session, "Ping", {}, self.settings.action_timeout)
            except AmiTimeout:
                raise AmiError("AMI Ping unanswered: connection presumed dead") from None

    async def _send(
        self, session: _Session, name: str, fields: Mapping[str, str], timeout: float | None
    ) -> Message | list[Message]:
        assert session.protocol is not None
        action = actions.Action({"Action": name, **fields})
        # as_list=None: let panoramisk detect list responses (EventList: start); its
        # default False would complete QueueStatus with the bare "will follow" line
        future = session.protocol.send(action, as_list=None)
        session.pending.add(future)
        future.add_done_callback(session.pending.discard)
        limit = self.settings.action_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                result: Any = await asyncio.shield(future)
        except (TimeoutError, asyncio.CancelledError) as exc:
            # Forget it: a late answer must not complete anything, it is never resent,
            # and a drop must not fail it with nobody to read that ("Future exception
            # was never retrieved" when its caller had been cancelled).
            session.protocol.responses.pop(action.id, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: its caller is gone
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise AmiTimeout(f"AMI action {name} not answered within {limit:.1f}s") from None
        first = result[0] if isinstance(result, list) else result
        if not first.success:
            raise AmiErrorResponse(
                f"AMI action {name} failed: {first.get('Message') or dict(first)}", first
            )
        return result  # type: ignore[no-any-return]

    # -- called by _Session ------------------------------------------------------

    def _on_message(self, session: _Session, message: Message) -> None:
        if session is not self._session:
            return  # a late event of a connection we already gave up on
        name = message.get("Event", "")
        if name == "FullyBooted":
            session.booted.set()
        event = message_fields(message)
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                logger.exception("ami_event_handler_failed event=%s", name)

    def _on_lost(self, session: _Session, exc: object) -> None:
        if session is self._session:
            self._ready.clear()
            if self._closing:
                # close(): ours, not a loss (it used to log "ami_connection_lost
                # reason=None", which read like a second drop after a restart)
                logger.info("ami_closed host=%s port=%s connects=%s", self.settings.host,
                            self.settings.port, self.connects)
            else:
                logger.warning("ami_connection_lost reason=%s", _lost_reason(exc))
            for handler in list(self._lost_handlers):
                try:
                    handler()
                except Exception:  # noqa: BLE001 - the others must still hear of it
                    logger.exception("ami_lost_handler_failed")


def _lost_reason(exc: object) -> str:
    """Why a connection ended, for the log: Asterisk's Shutdown event, the peer closing
    the socket (asyncio reports None), a socket error, or our own reason."""
    if isinstance(exc, Message):
        return f"Shutdown event (Restart={exc.get('Restart', '?')})"
    if exc is None:
        return "closed by Asterisk"
    return repr(str(exc)) if isinstance(exc, str | AmiError) else repr(exc)


async def stop_channel_playback(client: AmiClient, channel_id: str) -> None:
    """Stop whatever the channel is playing, without knowing the playback's id.

    An ARI `continue` waits in the channel's command queue behind the playback,
    and a restarted nohold cannot DELETE a playback whose id only the dead
    process knew (ARI lists no playbacks). ControlPlayback queues a stream-stop
    frame on the channel itself (found by name or uniqueid, i.e. the ARI id),
    which ends ARI's current sound playback at once. With nothing playing the
    frame is read and dropped by Stasis. Raises AmiError (e.g. no such channel).
    """
    await client.action("ControlPlayback", {"Channel": channel_id, "Control": "stop"})
