import json
import logging
import shlex

import pytest

from nohold import logs


def _record(msg: str) -> logging.LogRecord:
    record = logging.LogRecord("nohold.ivr", logging.INFO, __file__, 1, msg, (), None)
    logs._CallIdFilter().filter(record)
    return record


def test_every_line_carries_the_call_id_from_the_task_context():
    token = logs.call_id.set("1700000000.42")
    try:
        line = logs.LogfmtFormatter().format(_record("notice_start channel=abc"))
    finally:
        logs.call_id.reset(token)
    assert " call=1700000000.42 " in line
    assert 'msg="notice_start channel=abc"' in line
    assert " call=- " in logs.LogfmtFormatter().format(_record("outside a call"))


def test_json_lines_parse():
    data = json.loads(logs.JsonFormatter().format(_record('quote " and = sign')))
    assert data["msg"] == 'quote " and = sign' and data["call"] == "-"


def test_problem_lines_are_errors_and_tracebacks():
    text = "level=info msg=ok\nlevel=error msg=bad\nTraceback (most recent call last):\n"
    assert logs.problem_lines(text) == ["level=error msg=bad", "Traceback (most recent call last):"]


def _formatted(formatter: logging.Formatter, call: str, msg: str, *args: object) -> str:
    token = logs.call_id.set(call)
    try:
        record = logging.LogRecord("nohold.agi", logging.INFO, __file__, 1, msg, args, None)
        logs._CallIdFilter().filter(record)
        return formatter.format(record)
    finally:
        logs.call_id.reset(token)


FORGED_CALL = "x547b84 level=error msg=FORGED"
# Every line break Python's splitlines() knows: a log reader must never see a second line.
BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]


def test_logfmt_quotes_a_call_id_from_outside_so_it_cannot_forge_fields():
    line = _formatted(logs.LogfmtFormatter(), FORGED_CALL, "notice_start channel=%s", "ch")
    assert ' call="x547b84 level=error msg=FORGED" ' in line
    assert logs.problem_lines(line) == []
    fields = dict(f.split("=", 1) for f in shlex.split(line))
    assert list(fields) == ["ts", "level", "logger", "call", "msg"]
    assert fields["level"] == "info" and fields["call"] == FORGED_CALL


@pytest.mark.parametrize("brk", BREAKS)
def test_no_outside_text_can_start_a_fake_line(brk):
    fake = f"x{brk}ts=2026-01-01T00:00:00.000Z level=error msg=FORGED"
    for formatter in (logs.LogfmtFormatter(), logs.JsonFormatter()):
        line = _formatted(formatter, fake, "notice_start channel=%s caller=%s", fake, "1" + brk)
        assert len(line.splitlines()) == 1, repr(line)
        assert logs.problem_lines(line) == []


def test_outside_values_inside_the_message_stay_one_value():
    line = _formatted(logs.LogfmtFormatter(), "-", "call_start channel=%s caller=%s menu=%s",
                      "PJSIP/a-1", '100 level=error "x"', "main")
    msg = shlex.split(line.split(" msg=", 1)[1])[0]
    assert msg == r'call_start channel=PJSIP/a-1 caller="100 level=error \"x\"" menu=main'
    data = json.loads(_formatted(logs.JsonFormatter(), FORGED_CALL, "caller=%s", "a b"))
    assert data["call"] == FORGED_CALL and data["msg"] == 'caller="a b"'
