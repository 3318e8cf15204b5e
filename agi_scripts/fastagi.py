"""A FastAGI server: panoramisk's AGI result parser, with connection handling of our own.

Why not panoramisk's `Application.handler` as is (docs/decisions/0004-fastagi.md):
its header loop never checks EOF, so one TCP health check that connects and
closes spins the event loop forever; it catches BaseException (swallowing task
cancellation); `script?x=1` finds no route; a socket closed mid-command raises
ValueError. Here: headers are read line by line with a deadline, EOF is a
hang-up, the route is the path without its query, and protocol answers map to
typed errors (HANGUP, 510, 511, 520).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from panoramisk.utils import parse_agi_result

from nohold import logs

log = logging.getLogger("nohold.agi")

HEADER_TIMEOUT = 5.0
MAX_HEADER_LINES = 200


class AgiError(Exception):
    pass


class AgiHangup(AgiError):
    """The channel hung up (inline HANGUP, result=-1 hangup, 511, or the socket closed)."""


class AgiInvalidCommand(AgiError):
    """510: Asterisk does not know the command."""


class AgiUsageError(AgiError):
    """520: the command's arguments are wrong."""


@dataclass
class AgiRequest:
    """One FastAGI connection: the agi_* environment, the route's arguments, and commands."""

    env: dict[str, str]
    script: str
    query: dict[str, str]
    args: list[str]
    reader: asyncio.StreamReader = field(repr=False)
    writer: asyncio.StreamWriter = field(repr=False)
    hung_up: bool = False

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "?")

    async def command(self, line: str) -> dict[str, object]:
        if "\n" in line or "\r" in line:
            raise AgiUsageError(f"newline in AGI command {line!r}")
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        while True:
            raw = await self.reader.readline()
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
            raw = await self.reader.readline()
            if not raw or raw.startswith(b"520 "):
                return

    async def get_variable(self, name: str) -> str:
        result = await self.command(f"GET FULL VARIABLE ${{{name}}}")
        value = result.get("result", ("", ""))
        if isinstance(value, tuple) and value[0] == "1":
            return str(value[1])
        return ""

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f'SET VARIABLE {name} "{_quote(value)}"')

    async def stream_file(self, path: str, escape_digits: str = "") -> None:
        await self.command(f'STREAM FILE {path} "{escape_digits}"')


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


Route = Callable[[AgiRequest], Awaitable[None]]


class FastAgiServer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._connection, host, port)
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
        try:
            await self._serve(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        env = await _read_env(reader)
        if env is None:
            log.debug("fastagi_no_request peer=%s (health check or closed early)", peer)
            return
        logs.call_id.set(env.get("agi_linkedid") or env.get("agi_uniqueid") or "-")
        url = urlsplit(env.get("agi_network_script", "") or "")
        script = url.path.strip("/")
        args = [env[k] for k in sorted((k for k in env if k.startswith("agi_arg_")),
                                       key=lambda k: int(k[8:]) if k[8:].isdigit() else 0)]
        request = AgiRequest(env, script, dict(parse_qsl(url.query)), args, reader, writer)
        route = self.routes.get(script)
        if route is None:
            log.error("fastagi_unknown_script script=%r channel=%s known=%s", script,
                      request.channel, ",".join(sorted(self.routes)))
            await _status(request, "UNKNOWN_SCRIPT")
            return
        try:
            await route(request)
        except AgiHangup:
            log.info("fastagi_hangup script=%s channel=%s", script, request.channel)
        except AgiError:
            log.exception("fastagi_protocol_error script=%s channel=%s", script, request.channel)
            await _status(request, "ERROR")
        except Exception:
            log.exception("fastagi_failed script=%s channel=%s", script, request.channel)
            await _status(request, "ERROR")


async def _status(request: AgiRequest, status: str) -> None:
    """Tell the dialplan what happened, so it can branch on ${NOHOLD_AGI_STATUS}."""
    try:
        await request.set_variable("NOHOLD_AGI_STATUS", status)
    except (AgiError, OSError):
        pass


async def _read_env(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """The agi_* header block, or None when the peer sent none before EOF or the deadline."""
    env: dict[str, str] = {}
    try:
        async with asyncio.timeout(HEADER_TIMEOUT):
            for _ in range(MAX_HEADER_LINES):
                raw = await reader.readline()
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
