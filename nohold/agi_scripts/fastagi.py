"""A FastAGI server: panoramisk's AGI result parser, with connection handling of our own.

Why not panoramisk's `Application.handler` as is (docs/decisions/0005-fastagi.md):
its header loop never checks EOF, so one TCP health check that connects and
closes spins the event loop forever; it catches BaseException (swallowing task
cancellation); `script?x=1` finds no route; a socket closed mid-command raises
ValueError. Here: headers are read line by line with a deadline, EOF is a
hang-up, the route is the path without its query, and protocol answers map to
typed errors (HANGUP, 510, 511, 520).

FastAGI has no authentication: only peers in `[agi] allow` are served, lines are
bounded, and every command has a deadline, so a peer that is not Asterisk (or an
Asterisk that stopped answering) costs one warning line and a closed socket.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from panoramisk.utils import parse_agi_result

from nohold.agi_scripts.agi import (
    DEFAULT_COMMAND_TIMEOUT,
    AgiBadPeer,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiTimeout,
    AgiUsageError,
    CommandAgi,
    Route,
    check_command,
    dispatch,
    quote,
    variable_value,
    verb,
)
from nohold import logs
from nohold.decisions.peers import LOOPBACK, Network, peer_allowed

log = logging.getLogger("nohold.agi")

HEADER_TIMEOUT = 5.0
MAX_HEADER_LINES = 200
# Longest line read from a peer (asyncio's default, stated). Asterisk's header and
# result lines are far shorter; a longer one is a bad peer, not a request.
LINE_LIMIT = 64 * 1024

# The errors and the route's view live in agi_scripts/agi.py (shared with classic AGI);
# named here too for the modules that import them from the server.
__all__ = ["AgiBadPeer", "AgiError", "AgiHangup", "AgiInvalidCommand", "AgiRequest",
           "AgiTimeout", "AgiUsageError", "FastAgiServer", "Route"]


@dataclass
class AgiRequest(CommandAgi):
    """One FastAGI connection (an `Agi`): the agi_* environment, the route's arguments,
    and commands."""

    env: dict[str, str]
    script: str
    query: dict[str, str]
    args: list[str]
    reader: asyncio.StreamReader = field(repr=False)
    writer: asyncio.StreamWriter = field(repr=False)
    hung_up: bool = False
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    peer: str = "?"

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "?")

    async def command(self, line: str, extra_seconds: float = 0.0) -> dict[str, object]:
        """Send one command and wait, at most command_timeout (+ extra_seconds for a
        command that plays something), for its result."""
        check_command(line)
        limit = self.command_timeout + extra_seconds
        try:
            async with asyncio.timeout(limit):
                return await self._command(line)
        except TimeoutError:
            raise AgiTimeout(verb(line), limit) from None

    async def _command(self, line: str) -> dict[str, object]:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        while True:
            raw = await _readline(self.reader)
            if not raw:
                raise AgiHangup("connection closed by Asterisk")
            text = raw.decode(errors="replace").rstrip("\r\n")
            if text == "HANGUP":
                # Asterisk tells us inline; the command's own result still follows.
                self.hung_up = True
                continue
            if text.startswith("520-"):
                await self._skip_usage()
                raise AgiUsageError(f"{line}: {text}")
            result = parse_agi_result(text)
            if result.get("status_code") == 100:
                continue
            break
        error = result.get("error")
        if error == "AGIResultHangup" or result.get("status_code") == 511:
            raise AgiHangup(f"{line}: channel is gone")
        if error == "AGIInvalidCommand":
            raise AgiInvalidCommand(f"{line}: {text}")
        if error == "AGIUsageError":
            raise AgiUsageError(f"{line}: {text}")
        if error == "AGIAppError" and self.hung_up:
            raise AgiHangup(f"{line}: channel hung up")
        if error:
            raise AgiError(f"{line}: {text}")
        return result

    async def _skip_usage(self) -> None:
        while True:
            raw = await _readline(self.reader)
            if not raw or raw.startswith(b"520 "):
                return


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # asyncio's "chunk exceed the limit", with the line discarded
        raise AgiBadPeer(f"a line longer than {LINE_LIMIT} bytes") from None


class FastAgiServer:
    def __init__(
        self,
        routes: dict[str, Route],
        *,
        allow: tuple[Network, ...] = LOOPBACK,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self.routes = routes
        self.allow = allow
        self.command_timeout = command_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._connection, host, port,
                                                  limit=LINE_LIMIT)
        bound = int(self._server.sockets[0].getsockname()[1])
        log.info("fastagi_listening host=%s port=%s routes=%s", host, bound,
                 ",".join(sorted(self.routes)))
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = _peer_text(peername)
        try:
            host = str(peername[0]) if isinstance(peername, tuple) and peername else ""
            if not peer_allowed(host, self.allow):
                log.warning("fastagi_peer_refused peer=%s reason=not_in_agi_allow", peer)
                return
            await self._serve(reader, writer, peer)
        except AgiBadPeer as exc:
            log.warning("fastagi_bad_peer peer=%s reason=%s", peer, str(exc))
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        env = await _read_env(reader)
        if env is None:
            log.debug("fastagi_no_request peer=%s (health check or closed early)", peer)
            return
        # Asterisk sends no agi_linkedid: routes set the call id once they checked it.
        logs.call_id.set("-")
        url = urlsplit(env.get("agi_network_script", "") or "")
        script = url.path.strip("/")
        args = [env[k] for k in sorted((k for k in env if k.startswith("agi_arg_")),
                                       key=lambda k: int(k[8:]) if k[8:].isdigit() else 0)]
        request = AgiRequest(env, script, dict(parse_qsl(url.query)), args, reader, writer,
                             command_timeout=self.command_timeout, peer=peer)
        await dispatch(request, self.routes, script, "fastagi")


def _peer_text(peername: object) -> str:
    """`host:port`, `[v6]:port` for IPv6; `?` for what has no address."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    return "?"


async def _read_env(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """The agi_* header block, or None when the peer sent none before EOF or the deadline.
    AgiBadPeer when a line is too long."""
    env: dict[str, str] = {}
    try:
        async with asyncio.timeout(HEADER_TIMEOUT):
            for _ in range(MAX_HEADER_LINES):
                raw = await _readline(reader)
                if not raw:
                    return None
                line = raw.decode(errors="replace").rstrip("\r\n")
                if not line:
                    return env or None
                key, sep, value = line.partition(": ")
                if sep:
                    env[key] = value
    except (TimeoutError, ConnectionError):
        return None
    return None
