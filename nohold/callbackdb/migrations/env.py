"""Alembic environment: runs migrations over the same async engine nohold uses."""

import asyncio

from alembic import context

from nohold.callbackdb.engine import make_engine
from nohold.callbackdb.models import Base

target_metadata = Base.metadata


def _run(sync_conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=sync_conn, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = make_engine(context.config.attributes["database_url"])
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


asyncio.run(_main())
