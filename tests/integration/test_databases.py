"""The notice ledger on both engines: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

import asyncio

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import current_revision, head_revision, upgrade_async
from nohold.callbackdb.notice_ledger import NoticeLedger


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
