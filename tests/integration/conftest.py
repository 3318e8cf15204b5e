"""Both engines for the store tests: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.migrate import upgrade_async
from nohold.callbackdb.tickets import TicketStore
from tests.support.postgres import empty_database, postgres_server


@pytest.fixture(scope="session")
def pg_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nohold.db"
    url = request.getfixturevalue("pg_url")
    await empty_database(url)
    return url


@pytest.fixture
async def ticket_store(db_url: str) -> AsyncIterator[TicketStore]:
    """The tickets' store on a migrated database of each engine."""
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    try:
        yield TicketStore(engine)
    finally:
        await engine.dispose()
