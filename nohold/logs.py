"""Structured logs: every line carries the call's unique id (linkedid) when there is one.

The id travels in a context variable set by the call's task, so handlers deep in
the flow need not pass it around and cannot forget it.

Much of what is logged comes from outside (AGI environment, caller id, DTMF,
later webhooks and mail): the call id and every string argument of a message are
quoted when they could pass for another field or another line, so one log line
is always one event with the fields nohold wrote.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")


class _CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call = call_id.get()
        return True


class LogfmtFormatter(logging.Formatter):
    # Lines come in bursts within one second: its text is made once.
    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        msg = _message(record)
        line = (
            f"ts={self._second_text}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
            f"logger={record.name} call={_quote(str(getattr(record, 'call', '-')))} "
            f"msg={_quote(msg)}"
        )
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "call": getattr(record, "call", "-"),
            "msg": _message(record),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _message(record: logging.LogRecord) -> str:
    """getMessage(), with each string argument quoted when needed: `caller=%s` given
    `1 level=error` stays one value inside the message, not a second field."""
    if isinstance(record.args, tuple) and record.args:
        args = tuple(_quote(a) if isinstance(a, str) else a for a in record.args)
        try:
            return str(record.msg) % args
        except (TypeError, ValueError):
            pass
    return record.getMessage()


# A value that needs no quotes: printable ASCII but space, '"', '=' and '\\'.
_BARE = re.compile(r'[!#-<>-\[\]-~]+')


def _quote(text: str) -> str:
    """The text as one logfmt value. json.dumps escapes every control and non-ASCII
    character, so no line separator (\\r, \\x85, \\u2028 ...) reaches the output."""
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    # Nothing nohold writes shows the thread, process or source line of a record:
    # not gathering them halves a line's cost on the way to the notice
    # (the "Optimization" table of Python's logging HOWTO).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # noqa: SLF001 - the HOWTO's documented switch
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(_CallIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access chatter is not ours to log at info.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


# Anchored to the formatter's own fields: text from outside, quoted inside `call=` or
# `msg=`, cannot raise (or hide) an alert. A traceback printed by Python itself
# starts a line; one of ours sits in the quoted `exc=` field.
_PROBLEM = re.compile(
    r'^(?:ts=\S+ )?level=(?:error|critical)\b|^Traceback|\bexc="Traceback', re.IGNORECASE
)


def problem_lines(text: str) -> list[str]:
    """Log lines that should alert an admin: errors, criticals and tracebacks."""
    return [line for line in text.splitlines() if _PROBLEM.search(line) or _json_problem(line)]


def _json_problem(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        data = json.loads(line)
    except ValueError:
        return False
    return isinstance(data, dict) and (data.get("level") in ("error", "critical") or "exc" in data)
