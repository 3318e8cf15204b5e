"""`nohold check` weighs Asterisk's HTTP sessionlimit against what nohold may hold."""

from __future__ import annotations

import pytest
from panoramisk.message import Message

from nohold.ami.check import AmiCheckReport, _check_http_sessions
from nohold.ami.client import AmiErrorResponse


class StubAmi:
    def __init__(self, answer: Message | Exception) -> None:
        self.answer = answer

    async def action(self, name: str, fields: dict[str, str] | None = None):
        assert (name, fields) == ("GetConfig", {"Filename": "http.conf"})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def http_conf(*lines: str) -> Message:
    headers = {"Response": "Success", "Category-000000": "general"}
    for i, line in enumerate(lines):
        headers[f"Line-000000-{i:06d}"] = line
    return Message(headers)


@pytest.mark.parametrize(("lines", "problem", "words"), [
    (("enabled=yes", "bindport=8088"), False, "http: sessionlimit 100, nohold holds at most 12"),
    (("sessionlimit=400",), False, "http: sessionlimit 400"),
    (("sessionlimit = 15",), True, "raise sessionlimit in http.conf [general] to at least 22"),
])
async def test_the_limit_is_read_from_http_conf_and_weighed(lines, problem, words):
    report = AmiCheckReport()
    await _check_http_sessions(StubAmi(http_conf(*lines)), "nohold", 12, report)  # type: ignore[arg-type]
    said = report.problems if problem else report.notes
    assert len(said) == 1 and words in said[0], report
    assert not (report.notes if problem else report.problems)


async def test_without_read_config_it_only_notes_what_to_keep():
    report = AmiCheckReport()
    denied = AmiErrorResponse("Permission denied", {"Response": "Error"})
    await _check_http_sessions(StubAmi(denied), "nohold", 12, report)  # type: ignore[arg-type]
    assert report.problems == [] and "GetConfig needs read=config" in report.notes[0]
