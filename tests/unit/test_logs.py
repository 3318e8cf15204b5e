import json
import logging

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
