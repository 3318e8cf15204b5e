"""Both engines for the store tests: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

import pytest

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
