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


def test_a_value_is_bare_only_when_printable_ascii_without_space_quote_equals_or_backslash():
    # Every character of the first code pages, alone and inside a word: bare exactly
    # when no reader could take it for a separator, a quote or another line.
    for code in range(0x3100):
        c = chr(code)
        bare = c.isascii() and c.isprintable() and c not in ' "=\\'
        for text in (c, f"ab{c}cd"):
            assert (logs._quote(text) == text) is bare, (hex(code), text)
            assert json.loads(logs._quote(text)) == text if not bare else True
    assert logs._quote("") == '""'


def test_the_second_of_a_line_follows_the_record_not_the_previous_line():
    formatter = logs.LogfmtFormatter()
    first, second = _record("a"), _record("b")
    first.created, first.msecs = 1_700_000_000.5, 500
    second.created, second.msecs = 1_700_000_001.25, 250
    assert formatter.format(first).startswith("ts=2023-11-14T22:13:20.500Z ")
    assert formatter.format(second).startswith("ts=2023-11-14T22:13:21.250Z ")
    assert formatter.format(first).startswith("ts=2023-11-14T22:13:20.500Z ")
