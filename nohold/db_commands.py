"""How a feature's CLI command works on the database alone (no running nohold): one
engine for the command, the schema checked first, and every database failure said as
one line with what to do, never a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.callbackdb.engine import DatabaseUrlError, make_engine
from nohold.callbackdb.migrate import current_revision, head_revision
from nohold.config import Settings

T = TypeVar("T")


def on_database(settings: Settings, what: str,
                work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Runs `work` with an engine on the configured database; `what` names the tables
    the command needs, for the "run nohold db upgrade" message."""
    where = settings.database.url.split("@")[-1]

    async def go() -> T:
        engine = make_engine(settings.database.url)
        try:
            revision = await current_revision(engine)
            if revision != head_revision():
                raise click.ClickException(
                    f"database {where}: schema is at {revision or 'nothing'}, nohold needs "
                    f"{head_revision()} ({what}): run `nohold db upgrade`")
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except DatabaseUrlError as exc:
        raise click.ClickException(f"database.url: {exc}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(
            f"database {where}: {type(exc).__name__}: {str(exc).splitlines()[0]} "
            "(is it reachable, is the schema current? run: nohold db upgrade)") from None
