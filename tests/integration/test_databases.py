"""The notice ledger on both engines: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

import asyncio

import pytest

from callbackdb.engine import make_engine
from callbackdb.migrate import current_revision, head_revision, upgrade_async
from callbackdb.notice_ledger import NoticeLedger
from tests.support.postgres import postgres_server


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nohold.db"
    url = request.getfixturevalue("pg_url")
    # Each test gets a clean schema.
    engine = make_engine(url)
    async with engine.begin() as conn:
        from sqlalchemy import text
        await conn.execute(text("DROP TABLE IF EXISTS notice_plays, alembic_version"))
    await engine.dispose()
    return url


async def test_upgrade_twice_is_harmless(db_url):
    await upgrade_async(db_url)
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_two_nodes_racing_for_one_call_play_the_notice_once(db_url):
    """Two nohold nodes (two engines) and many channels of one call: exactly one claim wins."""
    await upgrade_async(db_url)
    node_a, node_b = make_engine(db_url), make_engine(db_url)
    try:
        ledgers = [NoticeLedger(node_a), NoticeLedger(node_b)]
        claims = [ledgers[i % 2].claim("call-42", f"ch-{i}", "+48123", "v1") for i in range(12)]
        results = await asyncio.gather(*claims)
        assert results.count(True) == 1
        await ledgers[1].finish("call-42", "completed")
        row = await ledgers[0].get("call-42")
        assert row.outcome == "completed" and row.caller == "+48123"
    finally:
        await node_a.dispose()
        await node_b.dispose()
