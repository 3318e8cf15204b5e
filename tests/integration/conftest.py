"""Both engines for the store tests: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from callbackdb.engine import make_engine
from tests.support.postgres import postgres_server

# Every table the migrations create, dropped between PostgreSQL tests.
TABLES = ("calendar_overrides, do_not_call, callback_attempts, callbacks, notice_plays, "
          "alembic_version")


@pytest.fixture(scope="session")
def pg_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/nohold.db"
    url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {TABLES} CASCADE"))
    await engine.dispose()
    return url
