"""`nohold callbacks` and `nohold dnc` against a real SQLite database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from nohold.callbackdb.callbacks import CallbackStore
from nohold.callbackdb.engine import make_engine
from nohold.cli import main
from nohold.decisions.callbacks import State


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/nohold.db"\n')
    assert nohold(path, "db", "upgrade").exit_code == 0
    return path


def nohold(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args])


def seed(config) -> list[int]:
    url = f"sqlite:///{config.parent}/nohold.db"

    async def go():
        engine = make_engine(url)
        store = CallbackStore(engine, "node-test")
        now = datetime.now(UTC)
        ids = []
        for i, number in enumerate(["+48601000001", "+48601000002"]):
            record, _ = await store.request(
                call_id=f"call-{i}", number=number, queue="billing",
                arrived_at=now - timedelta(minutes=10 - i), now=now,
                promised=(now, now + timedelta(minutes=5)), expires_at=now + timedelta(hours=4))
            ids.append(record.id)
        [queued] = await store.take_turns("billing", 1, now)
        connected = await store.move(queued.id, State.QUEUED, State.AGENT_CONNECTED, now)
        await store.begin_attempt(connected, "Local/agent@agents", now)
        await engine.dispose()
        return ids

    return asyncio.run(go())


def test_list_show_and_cancel(config):
    dialling, pending = seed(config)
    listed = nohold(config, "callbacks", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 2 and "dialling" in lines[0] and "pending" in lines[1]
    as_json = json.loads(nohold(config, "callbacks", "list", "--json").output)
    assert [(c["id"], c["state"], c["number"]) for c in as_json] == [
        (dialling, "dialling", "+48601000001"), (pending, "pending", "+48601000002")]

    shown = nohold(config, "callbacks", "show", str(dialling))
    assert shown.exit_code == 0 and "attempt 1: in progress agent Local/agent@agents" in \
        shown.output

    refused = nohold(config, "callbacks", "cancel", str(dialling))
    assert refused.exit_code == 1 and "being dialled now" in refused.output
    done = nohold(config, "callbacks", "cancel", str(pending))
    assert done.exit_code == 0 and "cancelled" in done.output
    again = nohold(config, "callbacks", "cancel", str(pending))
    assert again.exit_code == 1 and "already cancelled" in again.output
    assert nohold(config, "callbacks", "show", "999").exit_code == 1
    assert len(nohold(config, "callbacks", "list").output.splitlines()) == 1
    assert len(nohold(config, "callbacks", "list", "--all").output.splitlines()) == 2


def test_do_not_call_list_in_e164(config):
    assert "+48601234567: added" in nohold(config, "dnc", "add", "601234567",
                                           "--note", "asked").output
    assert "already listed" in nohold(config, "dnc", "add", "+48601234567").output
    assert "+48601234567" in nohold(config, "dnc", "list").output
    bad = nohold(config, "dnc", "add", "60123;4567")
    assert bad.exit_code == 1 and "not_digits" in bad.output
    assert nohold(config, "dnc", "remove", "0048601234567").exit_code == 0
    missing = nohold(config, "dnc", "remove", "601234567")
    assert missing.exit_code == 1 and "not on the do-not-call list" in missing.output
    assert "empty" in nohold(config, "dnc", "list").output


def test_a_database_without_the_schema_says_to_upgrade(tmp_path):
    path = tmp_path / "nohold.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/empty.db"\n')
    result = nohold(path, "callbacks", "list")
    assert result.exit_code == 1 and "nohold db upgrade" in result.output
