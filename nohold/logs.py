"""Structured logs: every line carries the call's unique id (linkedid) when there is one.

The id travels in a context variable set by the call's task, so handlers deep in
the flow need not pass it around and cannot forget it.
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
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg = record.getMessage()
        line = (
            f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
            f"logger={record.name} call={getattr(record, 'call', '-')} msg={_quote(msg)}"
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
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _quote(text: str) -> str:
    if text and not any(c in text for c in ' "=\n'):
        return text
    return json.dumps(text)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(_CallIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access chatter is not ours to log at info.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


_PROBLEM = re.compile(r"level=(error|critical)\b|Traceback", re.IGNORECASE)


def problem_lines(text: str) -> list[str]:
    """Log lines that should alert an admin: errors, criticals and tracebacks."""
    return [line for line in text.splitlines() if _PROBLEM.search(line)]
