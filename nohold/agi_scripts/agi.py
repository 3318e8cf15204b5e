"""What an AGI route sees, whichever way Asterisk reached it.

A route (`notice_once`, `hours`, `partner`) is one `async def route(agi: Agi)`. Two
transports run the very same routes:

- FastAGI (`agi_scripts/fastagi.py`): a TCP connection to `nohold run`, many calls
  in one process;
- classic AGI (`agi_scripts/classic.py`, the `nohold-agi` command): a process
  Asterisk starts for one call, speaking over its stdin and stdout (pyst2).

Both map Asterisk's answers to the same typed errors, and `dispatch()` turns what a
route raised into the same `NOHOLD_AGI_STATUS` for the dialplan.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("nohold.agi")

DEFAULT_COMMAND_TIMEOUT = 5.0


class AgiError(Exception):
    pass


class AgiHangup(AgiError):
    """The channel hung up (inline HANGUP, SIGHUP, result=-1 hangup, 511, or the
    connection closed)."""


class AgiInvalidCommand(AgiError):
    """510: Asterisk does not know the command."""


class AgiUsageError(AgiError):
    """520: the command's arguments are wrong."""


class AgiBadPeer(AgiError):
    """The peer broke the protocol (a line too long): close it, it is not Asterisk."""


class AgiTimeout(AgiError):
    """The peer did not answer a command in time."""

    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(f"{command}: no answer within {seconds:g}s")
        self.command = command
        self.seconds = seconds


class Agi(Protocol):
    """One AGI session: the agi_* environment, the route's arguments, and commands."""

    env: dict[str, str]
    args: list[str]
    # Who is speaking: `host:port` over FastAGI, `asterisk` for a classic AGI child.
    peer: str
    command_timeout: float

    @property
    def channel(self) -> str: ...

    @property
    def hung_up(self) -> bool:
        """Asterisk said the channel hung up (the command's own result may follow)."""
        ...

    async def command(self, line: str, extra_seconds: float = 0.0) -> dict[str, object]:
        """Send one command; wait at most command_timeout (+ extra_seconds) for its
        result. Raises the errors above."""
        ...

    async def get_variable(self, name: str) -> str: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def stream_file(self, path: str, escape_digits: str = "",
                          max_seconds: float = 0.0) -> None: ...


Route = Callable[[Agi], Awaitable[None]]


class CommandAgi:
    """The commands every transport sends the same way, on top of its own `command`
    (FastAGI over a socket, classic AGI over stdin/stdout)."""

    async def command(self, line: str, extra_seconds: float = 0.0) -> dict[str, object]:
        raise NotImplementedError

    async def get_variable(self, name: str) -> str:
        return variable_value(await self.command(f"GET FULL VARIABLE ${{{name}}}"))

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f'SET VARIABLE {name} "{quote(value)}"')

    async def stream_file(self, path: str, escape_digits: str = "",
                          max_seconds: float = 0.0) -> None:
        """Play a file of at most `max_seconds`: the wait is that plus the command
        timeout."""
        await self.command(f'STREAM FILE {path} "{escape_digits}"', extra_seconds=max_seconds)


def check_command(line: str) -> None:
    if "\n" in line or "\r" in line:
        raise AgiUsageError(f"newline in AGI command {line!r}")


def quote(value: str) -> str:
    """A value inside "..." of an AGI command."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def verb(line: str) -> str:
    """The command without its arguments, for logs (arguments may hold values)."""
    words = line.split()
    return " ".join(words[:2]) if words[:1] in (["STREAM"], ["SET"], ["GET"]) else words[0]


def variable_value(result: dict[str, object]) -> str:
    """The value of GET (FULL) VARIABLE's `200 result=1 (value)`; "" when unset."""
    value = result.get("result", ("", ""))
    if isinstance(value, tuple) and value and value[0] == "1":
        return str(value[1])
    return ""


async def dispatch(agi: Agi, routes: dict[str, Route], script: str, how: str) -> None:
    """Run the route `script` on `agi`: whatever happens, the dialplan goes on and
    ${NOHOLD_AGI_STATUS} says what happened (UNKNOWN_SCRIPT, ERROR, or the route's
    own). `how` names the transport in log lines (`fastagi`, `agi`). AgiBadPeer is
    raised: the caller closes that peer."""
    route = routes.get(script)
    if route is None:
        log.error("%s_unknown_script script=%r channel=%s known=%s", how, script,
                  agi.channel, ",".join(sorted(routes)))
        await report_status(agi, "UNKNOWN_SCRIPT")
        return
    try:
        await route(agi)
    except AgiHangup:
        log.info("%s_hangup script=%s channel=%s", how, script, agi.channel)
    except AgiTimeout as exc:
        # Telling the dialplan would wait on the same silent peer again.
        log.warning("%s_peer_timeout peer=%s script=%s channel=%s command=%s after=%gs",
                    how, agi.peer, script, agi.channel, exc.command, exc.seconds)
    except AgiBadPeer:
        raise
    except AgiError:
        log.exception("%s_protocol_error script=%s channel=%s", how, script, agi.channel)
        await report_status(agi, "ERROR")
    except Exception:
        log.exception("%s_failed script=%s channel=%s", how, script, agi.channel)
        await report_status(agi, "ERROR")


async def report_status(agi: Agi, status: str) -> None:
    """Tell the dialplan what happened, so it can branch on ${NOHOLD_AGI_STATUS}."""
    try:
        await agi.set_variable("NOHOLD_AGI_STATUS", status)
    except (AgiError, OSError):
        pass
