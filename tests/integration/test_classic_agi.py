"""`nohold-agi` (classic AGI) as Asterisk runs it: a child process with the AGI environment
on its stdin, commands on its stdout, a real SQLite database. The fake Asterisk here
answers each command from a script; the real one is in tests/e2e/test_classic_agi.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nohold.agi_cli import UsageError, config_path, parse_argv
from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.notice_ledger import NoticeLedger

LINKEDID = "pbx-1700000000.40"
UNIQUEID = "pbx-1700000000.41"
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

Reply = Callable[[str], bytes | None]


def ok(command: str) -> bytes:
    if command.startswith("GET FULL VARIABLE ${CHANNEL(linkedid)}"):
        return f"200 result=1 ({LINKEDID})\n".encode()
    if command.startswith("GET FULL VARIABLE"):
        return b"200 result=0\n"
    return b"200 result=0 endpos=8000\n" if command.startswith("STREAM") else b"200 result=1\n"


class Run:
    def __init__(self, commands: list[str], stderr: str, code: int | None) -> None:
        self.commands = commands
        self.stderr = stderr
        self.code = code

    def set(self, name: str) -> str | None:
        """The last value the script set for `name`."""
        prefix = f"SET VARIABLE {name} "
        found = [c for c in self.commands if c.startswith(prefix)]
        return found[-1][len(prefix):].strip('"') if found else None


async def agi(argv: list[str], reply: Reply = ok, env: dict[str, str] | None = None,
              timeout: float = 30) -> Run:
    """Run `nohold-agi argv...` as Asterisk would, answering each command with `reply`
    (None: the channel hangs up: SIGHUP, then "200 result=-1")."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nohold.agi_cli", *argv, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NOHOLD_")},
             **(env or {})})
    assert proc.stdin and proc.stdout and proc.stderr
    headers = {"agi_request": "nohold-agi", "agi_channel": "PJSIP/100-00000001",
               "agi_uniqueid": UNIQUEID, "agi_callerid": "100", "agi_context": "t",
               **{f"agi_arg_{i}": a for i, a in enumerate(argv, 1)}}
    proc.stdin.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
    commands: list[str] = []
    async with asyncio.timeout(timeout):
        while line := await proc.stdout.readline():
            command = line.decode().strip()
            commands.append(command)
            answer = reply(command)
            if answer is None:
                proc.send_signal(signal.SIGHUP)
                answer = b"200 result=-1 endpos=0\n"
            proc.stdin.write(answer)
        stderr = (await proc.stderr.read()).decode()
        code = await proc.wait()
    return Run(commands, stderr, code)


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path}/nohold.db"
    await upgrade_async(url)
    path = tmp_path / "nohold.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[agi]\ncommand_timeout = 1\n'
                    '[prompts]\nasterisk_dir = "/snd"\n[calendar]\ncountry = ""\n'
                    'default = "always"\n[calendar.always]\n'
                    + "".join(f'{day} = ["00:00-24:00"]\n' for day in ALL_DAY))
    return path


async def outcome(config: Path) -> str | None:
    engine = make_engine(f"sqlite:///{config.parent}/nohold.db")
    try:
        row = await NoticeLedger(engine).get(LINKEDID)
        return row.outcome if row else None
    finally:
        await engine.dispose()


async def test_the_notice_plays_in_the_first_process_and_is_skipped_in_the_next(config):
    first = await agi(["--config", str(config), "notice_once"])
    assert first.code == 0, first.stderr
    assert "ANSWER" in first.commands
    assert 'STREAM FILE /snd/notice ""' in first.commands
    assert first.set("__NOHOLD_NOTICE_PLAYED") == "1"
    assert (first.set("NOHOLD_NOTICE"), first.set("NOHOLD_AGI_STATUS")) == ("played", "OK")
    # Classic AGI asks no ARI proof: the process is Asterisk's child.
    assert not [c for c in first.commands if "NOHOLD_AGI_NONCE" in c]
    assert await outcome(config) == "completed"  # written before the process ended

    second = await agi([f"--config={config}", "notice_once", LINKEDID])
    assert not [c for c in second.commands if c.startswith(("ANSWER", "STREAM"))]
    assert (second.set("NOHOLD_NOTICE"), second.set("NOHOLD_AGI_STATUS")) == ("skipped", "OK")
    assert "level=error" not in first.stderr + second.stderr


async def test_a_caller_who_hangs_up_during_the_notice_is_recorded_so(config):
    run = await agi(["-c", str(config), "notice_once"],
                    reply=lambda c: None if c.startswith("STREAM") else ok(c))
    assert run.code == 0, run.stderr
    assert run.set("NOHOLD_NOTICE") is None
    assert await outcome(config) == "caller_hung_up"
    assert "agi_hangup script=notice_once" in run.stderr


@pytest.mark.parametrize(("argv", "status", "said"), [
    (["nosuch"], "UNKNOWN_SCRIPT", "no route 'nosuch'"),
    ([], "UNKNOWN_SCRIPT", "no route given"),
    (["--verbose", "hours"], "BAD_INPUT", "unknown option '--verbose'"),
    (["partner"], "UNKNOWN_SCRIPT", "no route 'partner'"),  # [afterhours] is not enabled
])
async def test_a_bad_argument_is_said_and_the_dialplan_goes_on(config, argv, status, said):
    run = await agi(["-c", str(config), *argv] if argv[:1] != ["--verbose"] else argv,
                    env={"NOHOLD_CONFIG": str(config)})
    assert run.code == 0
    assert run.set("NOHOLD_AGI_STATUS") == status
    verbose = [c for c in run.commands if c.startswith("VERBOSE")]
    assert len(verbose) == 1 and said in verbose[0], run.commands
    assert said in run.stderr  # and on stderr: Asterisk's console or journal


async def test_a_broken_config_is_said_and_the_dialplan_goes_on(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[notice]\nmax_seconds = -1\n")
    run = await agi(["-c", str(bad), "notice_once"])
    assert run.code == 0 and run.set("NOHOLD_AGI_STATUS") == "ERROR"
    assert "notice.max_seconds" in run.stderr
    assert not [c for c in run.commands if c.startswith(("ANSWER", "STREAM"))]


async def test_hours_sets_what_the_fastagi_route_sets(config):
    run = await agi(["-c", str(config), "hours"])
    assert run.set("NOHOLD_OPEN") == "1"
    assert (run.set("NOHOLD_CLOSED_REASON"), run.set("NOHOLD_CLOSED_DETAIL")) == ("", "")
    assert run.set("NOHOLD_NEXT_CHANGE") == "" and run.set("NOHOLD_AGI_STATUS") == "OK"
    assert (await agi(["-c", str(config), "hours", "nosuch"])).set(
        "NOHOLD_AGI_STATUS") == "UNKNOWN_CALENDAR"


async def test_partner_sets_the_trunk_and_headers_when_afterhours_is_enabled(config):
    config.write_text(config.read_text() + '[afterhours]\nenabled = true\n'
                      'trunks = ["partner"]\n')
    run = await agi(["-c", str(config), "partner"])
    assert run.code == 0, run.stderr
    assert run.set("NOHOLD_PARTNER_DIAL1") == "PJSIP/partner"
    assert run.set("NOHOLD_PARTNER_PROMPT") == "/snd/partner_intro"
    assert run.set("NOHOLD_AGI_STATUS") == "OK"


async def test_a_silent_asterisk_costs_one_command_timeout(config):
    started = asyncio.get_running_loop().time()
    run = await agi(["-c", str(config), "hours"],
                    reply=lambda c: b"" if c.startswith("SET VARIABLE NOHOLD_OPEN") else ok(c))
    assert run.code == 0
    timeouts = [line for line in run.stderr.splitlines() if "agi_peer_timeout" in line]
    assert len(timeouts) == 1 and "SET VARIABLE" in timeouts[0], run.stderr
    assert asyncio.get_running_loop().time() - started < 15


def test_arguments():
    assert parse_argv(["hours", "desk"]) == (None, "hours", ["desk"])
    assert parse_argv(["-c", "/x.toml", "notice_once", "1.2"]) == (
        Path("/x.toml"), "notice_once", ["1.2"])
    for bad in (["-c"], ["--nope", "hours"], [], [""]):
        with pytest.raises(UsageError):
            parse_argv(bad)
    assert config_path(None, {"NOHOLD_CONFIG": "/a.toml"}) == Path("/a.toml")
    assert config_path(Path("/b.toml"), {"NOHOLD_CONFIG": "/a.toml"}) == Path("/b.toml")


def test_the_command_is_installed_as_nohold_agi():
    import tomllib

    from nohold import agi_cli

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                              .read_text())
    assert pyproject["project"]["scripts"]["nohold-agi"] == "nohold.agi_cli:main"
    assert callable(agi_cli.main)


async def test_classic_agi_serves_the_routes_fastagi_serves_with_the_same_handlers(config):
    """The FastAGI routes come from the features' start(); nohold-agi builds its own over
    what its process opens: the same names, the same handler classes."""
    import aiohttp

    from nohold import agi_cli, registry
    from nohold.agi_scripts import notice_once
    from nohold.ari_apps.afterhours import feature as afterhours
    from nohold.calendar import feature as calendar
    from nohold.feature import ServiceContext

    config.write_text(config.read_text() + "[afterhours]\nenabled = true\n")
    settings = registry.load_settings(config, env={})
    engine = make_engine(settings.database.url)
    async with aiohttp.ClientSession() as http:
        ctx = ServiceContext(settings, engine, NoticeLedger(engine), {}, http)
        fastagi = {}
        for feature in (calendar, afterhours, notice_once):
            fastagi.update(feature.FEATURE.start(ctx).agi_routes)
        classic = {}
        for name, build in agi_cli.routes(settings).items():
            async with build(settings, engine) as route:
                classic[name] = type(route)
    await engine.dispose()
    assert {name: type(route) for name, route in fastagi.items()} == classic
