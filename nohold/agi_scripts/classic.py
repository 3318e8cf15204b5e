"""Classic AGI: one process per call, started by Asterisk, speaking over stdin and stdout.

For admins who cannot run nohold's FastAGI server: `AGI(nohold-agi,notice_once)`
runs the same route handlers as `AGI(agi://.../notice_once)`. pyst2's `asterisk.agi.AGI`
reads the environment and parses Asterisk's answers; `ClassicAgi` is the `Agi` the
routes see over it (agi_scripts/agi.py), with the same typed errors as FastAGI:

- a SIGHUP from Asterisk (the caller hung up; pyst2 notes it), 511, `result=-1` after
  a hang-up, or stdin closed: AgiHangup;
- every read from Asterisk has a deadline (`[agi] command_timeout`, plus the notice's
  length while it plays): AgiTimeout, as over FastAGI;
- 510: AgiInvalidCommand; 520: AgiUsageError.

pyst2 calls are synchronous: in a process that serves one call, the event loop has
nothing else to do while a command is out, except the ledger's writer, which the
command's end lets run.
"""

from __future__ import annotations

import os
import select
import time
from typing import IO

from asterisk.agi import (
    AGI,
    AGIAppError,
    AGIHangup,
    AGIInvalidCommand,
    AGIUnknownError,
    AGIUsageError,
)

from nohold.agi_scripts.agi import (
    DEFAULT_COMMAND_TIMEOUT,
    AgiBadPeer,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiTimeout,
    AgiUsageError,
    CommandAgi,
    check_command,
    quote,
    variable_value,
    verb,
)

# Asterisk sends the environment at once; a process that waits longer was not started
# by Asterisk's AGI() (or Asterisk is stuck): it gives up.
ENV_TIMEOUT = 5.0
LINE_LIMIT = 64 * 1024


class AsteriskLines:
    """Asterisk's lines on a file descriptor, each read within the current deadline:
    what pyst2 reads with `readline()`. EOF is a hang-up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""
        self.deadline: float | None = None
        self.command = "environment"
        self._limit = 0.0

    def readline(self) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > LINE_LIMIT:
                raise AgiBadPeer(f"a line longer than {LINE_LIMIT} bytes")
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                # select() is restarted after a signal (SIGHUP) with the time left.
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    raise AgiTimeout(self.command, self._limit)
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise AgiHangup("stdin closed by Asterisk")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def within(self, command: str, seconds: float) -> None:
        self.command = command
        self._limit = seconds
        self.deadline = time.monotonic() + seconds


class _Discard:
    """pyst2 narrates every line it reads to stderr: not into Asterisk's log."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class ClassicAgi(CommandAgi):
    """One classic AGI session (an `Agi`) over pyst2."""

    peer = "asterisk"

    def __init__(self, pyst: AGI, lines: AsteriskLines, args: list[str],
                 command_timeout: float = DEFAULT_COMMAND_TIMEOUT) -> None:
        self._pyst = pyst
        self._lines = lines
        self.env: dict[str, str] = dict(pyst.env)
        self.args = args
        self.command_timeout = command_timeout

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "?")

    @property
    def hung_up(self) -> bool:
        # pyst2's SIGHUP handler notes Asterisk's "the channel hung up" here.
        return bool(self._pyst._got_sighup)

    async def command(self, line: str, extra_seconds: float = 0.0) -> dict[str, object]:
        check_command(line)
        name = verb(line)
        self._lines.within(name, self.command_timeout + extra_seconds)
        try:
            result: dict[str, object] = self._pyst.execute(line)
            return result
        except AgiError:
            raise  # from AsteriskLines: closed, silent, or a line too long
        except AGIHangup as exc:  # SIGHUP, SIGPIPE, or "(hangup)" in the result
            raise AgiHangup(f"{name}: {type(exc).__name__}") from None
        except AGIAppError as exc:  # result=-1
            if self.hung_up:
                raise AgiHangup(f"{name}: channel hung up") from None
            raise AgiError(f"{name}: {exc}") from None
        except AGIInvalidCommand as exc:
            raise AgiInvalidCommand(f"{name}: {exc}") from None
        except AGIUsageError as exc:
            raise AgiUsageError(f"{name}: {str(exc).strip()}") from None
        except AGIUnknownError as exc:
            if exc.args and exc.args[0] == 511:  # Command Not Permitted on a dead channel
                raise AgiHangup(f"{name}: channel is gone") from None
            raise AgiError(f"{name}: {exc}") from None
        finally:
            self._lines.deadline = None

    async def verbose(self, text: str, level: int = 1) -> None:
        """A line in Asterisk's own verbose log (what the admin watches), never raising."""
        try:
            await self.command(f'VERBOSE "{quote(text)}" {level}')
        except AgiError:
            pass


def open_session(args: list[str], stdin_fd: int = 0, stdout: IO[str] | None = None,
                 command_timeout: float = DEFAULT_COMMAND_TIMEOUT) -> ClassicAgi:
    """Read the environment Asterisk sends a classic AGI script (within ENV_TIMEOUT).
    Raises AgiHangup / AgiTimeout when none comes."""
    lines = AsteriskLines(stdin_fd)
    lines.within("environment", ENV_TIMEOUT)
    try:
        if stdout is None:
            pyst = AGI(stdin=lines, stderr=_Discard())
        else:
            pyst = AGI(stdin=lines, stdout=stdout, stderr=_Discard())
    finally:
        lines.deadline = None
    return ClassicAgi(pyst, lines, args, command_timeout)
