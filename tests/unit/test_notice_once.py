"""notice_once against a scripted Asterisk (AGI socket) and a fake ARI that sees the same
channel: what a forger, a bad id, a silent peer and a missing ARI can and cannot do."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from sqlalchemy import text

from nohold.agi_scripts.channel_proof import AriProof
from nohold.agi_scripts.fastagi import FastAgiServer
from nohold.agi_scripts.notice_once import NoticeOnce
from nohold.ari_apps.ari_client import AriError, AriNotFound
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.config import parse_settings

LINKEDID = "pbx-1700000000.40"
UNIQUEID = "pbx-1700000000.41"
SETTINGS = parse_settings({"agi": {"command_timeout": 0.5}, "notice": {"max_seconds": 0.5}})


class Channel:
    """One Asterisk channel as both sides see it: variables set over AGI are what ARI reads."""

    def __init__(self, uniqueid: str = UNIQUEID, linkedid: str = LINKEDID) -> None:
        self.uniqueid = uniqueid
        self.variables = {"CHANNEL(linkedid)": linkedid}


class FakeAri:
    def __init__(self, channels: list[Channel], down: bool = False) -> None:
        self.channels = {c.uniqueid: c for c in channels}
        self.down = down
        self.requests: list[str] = []

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> Any:
        self.requests.append(f"{method} {path} {params}")
        if self.down:
            raise AriError("ARI GET failed: ClientConnectorError")
        match = re.fullmatch(r"/channels/([^/]+)/variable", path)
        assert match and method == "GET" and params
        channel = self.channels.get(match[1])
        if channel is None or params["variable"] not in channel.variables:
            raise AriNotFound(404, "Channel or variable not found", method, path)
        return {"value": channel.variables[params["variable"]]}


async def agi_session(port: int, headers: dict[str, str], channel: Channel | None = None,
                      silent_on: str | None = None) -> list[str]:
    """Speak FastAGI like Asterisk (channel given: SET VARIABLE really sets) or like a
    forger (no channel: "200 result=1" to everything). `silent_on`: stop answering there."""
    env = {"agi_network": "yes", "agi_network_script": "notice_once",
           "agi_channel": "PJSIP/alice-00000001", "agi_uniqueid": UNIQUEID,
           "agi_callerid": "100", **headers}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    commands: list[str] = []
    while line := (await asyncio.wait_for(reader.readline(), 5)).decode().strip():
        commands.append(line)
        if silent_on and line.startswith(silent_on):
            continue
        if channel is not None and (m := re.fullmatch(r'SET VARIABLE (\S+) "(.*)"', line)):
            channel.variables[m[1]] = m[2]
        writer.write(b"200 result=1\n")
    writer.close()
    return commands


@pytest.fixture
async def served(tmp_path):
    """`port, ledger = await served(ari)`: nohold's FastAGI server with notice_once."""
    url = f"sqlite:///{tmp_path}/n.db"
    await upgrade_async(url)
    engine = make_engine(url)
    ledger = NoticeLedger(engine)
    servers: list[FastAgiServer] = []

    async def start(ari: FakeAri) -> tuple[int, NoticeLedger]:
        server = FastAgiServer({"notice_once": NoticeOnce(SETTINGS, ledger, AriProof(
            ari, SETTINGS.agi.command_timeout))},
                               command_timeout=SETTINGS.agi.command_timeout)
        servers.append(server)
        return await server.start("127.0.0.1", 0), ledger

    yield start
    for server in servers:
        await server.close()
    await engine.dispose()


def _status(commands: list[str]) -> str:
    return next(c for c in reversed(commands) if "NOHOLD_AGI_STATUS" in c).split('"')[1]


async def test_asterisk_running_the_call_claims_and_plays(served):
    channel = Channel()
    ari = FakeAri([channel])
    port, ledger = await served(ari)
    commands = await agi_session(port, {"agi_arg_1": LINKEDID}, channel)
    assert any(c.startswith("STREAM FILE") for c in commands)
    assert _status(commands) == "OK" and channel.variables["NOHOLD_NOTICE"] == "played"
    await ledger.drain()  # the outcome is written in the background
    assert (await ledger.get(LINKEDID)).outcome == "completed"
    assert len(ari.requests) == 2  # the proof's cost: two ARI reads


@pytest.mark.parametrize("when", ["before the call exists", "while the call runs"])
async def test_a_forger_cannot_claim_a_call(served, caplog, when):
    """A local process speaking FastAGI for a predicted or real linkedid: its SET VARIABLE
    sets nothing, so ARI never shows it the nonce; nothing is claimed, nothing played."""
    real = Channel()
    ari = FakeAri([] if when == "before the call exists" else [real])
    port, ledger = await served(ari)
    forged = await agi_session(port, {"agi_arg_1": LINKEDID})
    assert _status(forged) == "REFUSED"
    assert not any(c.startswith(("STREAM FILE", "ANSWER")) for c in forged)
    assert await ledger.get(LINKEDID) is None
    assert re.search(r"agi_proof_failed peer=127\.0\.0\.1:\d+ channel=", caplog.text)
    # ... and the real call, when Asterisk runs it, still hears the notice.
    ari.channels[real.uniqueid] = real
    assert _status(await agi_session(port, {"agi_arg_1": LINKEDID}, real)) == "OK"
    assert real.variables["NOHOLD_NOTICE"] == "played"


async def test_a_real_channel_cannot_claim_another_calls_linkedid(served, caplog):
    channel = Channel(linkedid="pbx-1700000000.1")
    port, ledger = await served(FakeAri([channel]))
    commands = await agi_session(port, {"agi_arg_1": LINKEDID}, channel)
    assert _status(commands) == "REFUSED" and await ledger.get(LINKEDID) is None
    assert "reason=linkedid_mismatch" in caplog.text


async def test_without_ari_the_notice_plays_but_nothing_is_claimed(served, caplog):
    channel = Channel()
    port, ledger = await served(FakeAri([channel], down=True))
    commands = await agi_session(port, {"agi_arg_1": LINKEDID}, channel)
    assert any(c.startswith("STREAM FILE") for c in commands)
    assert _status(commands) == "OK" and channel.variables["NOHOLD_NOTICE"] == "played"
    assert await ledger.get(LINKEDID) is None
    assert "agi_proof_unavailable" in caplog.text


@pytest.mark.parametrize("headers", [
    {"agi_arg_1": "x" * 60_006},
    {"agi_arg_1": "x547b84 level=error msg=FORGED"},
    {"agi_arg_1": LINKEDID, "agi_uniqueid": "u" * 65},
    {"agi_arg_1": LINKEDID, "agi_channel": "PJSIP/a b"},
])
async def test_bad_ids_are_refused_at_the_edge_with_one_line(served, caplog, headers):
    caplog.set_level(logging.INFO)
    ari = FakeAri([Channel()])
    port, ledger = await served(ari)
    commands = await agi_session(port, headers)
    assert commands == ['SET VARIABLE NOHOLD_AGI_STATUS "BAD_INPUT"'] and ari.requests == []
    async with ledger._engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM notice_plays"))).scalar() == 0
    lines = [r for r in caplog.records
             if r.name.startswith("nohold") and not r.msg.startswith("fastagi_listening")]
    assert len(lines) == 1 and lines[0].getMessage().startswith("agi_bad_input peer=127.0.0.1:")
    assert len(lines[0].getMessage()) < 300


async def test_an_odd_caller_id_is_not_stored_but_the_caller_is_told(served, caplog):
    channel = Channel()
    port, ledger = await served(FakeAri([channel]))
    commands = await agi_session(port, {"agi_arg_1": LINKEDID,
                                        "agi_callerid": "100 level=error"}, channel)
    assert _status(commands) == "OK" and (await ledger.get(LINKEDID)).caller == ""
    assert "agi_caller_not_stored" in caplog.text


async def test_a_peer_silent_during_the_notice_gets_a_failed_row_and_a_closed_socket(
        served, caplog):
    caplog.set_level(logging.INFO)
    channel = Channel()
    port, ledger = await served(FakeAri([channel]))
    started = asyncio.get_running_loop().time()
    commands = await agi_session(port, {"agi_arg_1": LINKEDID}, channel, silent_on="STREAM FILE")
    # Closed by nohold after the notice's length plus command_timeout, not held for ever.
    assert asyncio.get_running_loop().time() - started < 6  # 1 s, with room for a busy CI
    assert commands[-1].startswith("STREAM FILE")
    await ledger.drain()
    row = await ledger.get(LINKEDID)
    assert row.outcome == "failed" and row.finished_at is not None
    assert "outcome=failed reason=agi_timeout command=STREAM FILE" in caplog.text
    assert "fastagi_peer_timeout" in caplog.text
