"""Fixtures that run nohold itself against the sandbox Asterisk (from tests/conftest.py)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold.config import PromptSettings
from nohold.prompts import build_prompts
from tests.support.nohold_process import Clock, NoholdProcess, run_cli, write_config

_counter = itertools.count()


@pytest.fixture(scope="session")
def prompts(asterisk: Any) -> dict[str, float]:
    """The default prompts, rendered once per session where the sandbox can play them."""
    built = build_prompts(PromptSettings(dir=asterisk.prompts_dir))
    return {p.name: p.seconds for p in built}


@pytest.fixture
def start_nohold(
    asterisk: Any, prompts: dict[str, float], tmp_path: Any
) -> Iterator[Callable[..., Any]]:
    """`await start_nohold({...overrides})` -> a running NoholdProcess with a fresh database."""
    started: list[NoholdProcess] = []

    async def start(overrides: dict[str, Any] | None = None, box: Any = None,
                    clock: Clock | None = None) -> NoholdProcess:
        """`box`: another sandbox than the session's (its prompts are built here);
        `clock`: the wall clock nohold sees (a Saturday...), None for the real one."""
        if box is None:
            box = asterisk
        elif not (box.prompts_dir / "notice.wav").exists():
            build_prompts(PromptSettings(dir=box.prompts_dir))
        n = next(_counter)
        workdir = tmp_path / f"nohold-{n}"
        workdir.mkdir()
        config = write_config(box, workdir / "nohold.toml", overrides)
        result = run_cli(config, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        proc = NoholdProcess(config=config, log_path=workdir / "nohold.log", clock=clock)
        started.append(proc)
        proc.start()
        await proc.wait_ready(box)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
async def ledger_for() -> AsyncIterator[Callable[[NoholdProcess], NoticeLedger]]:
    """Open the notice ledger of a nohold process's database (to read proof rows)."""
    engines = []

    def open_ledger(proc: NoholdProcess) -> NoticeLedger:
        db = proc.config.parent / "nohold.db"
        engine = make_engine(f"sqlite:///{db}")
        engines.append(engine)
        return NoticeLedger(engine)

    yield open_ledger
    for engine in engines:
        await engine.dispose()
