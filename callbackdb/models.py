"""Tables. Times are stored in UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class NoticePlay(Base):
    """Proof that a call heard the recording notice (GDPR first-layer notice).

    One row per call: `call_id` is Asterisk's linkedid, shared by every channel of
    the call, so a transfer or a re-entry finds the row and does not replay.
    """

    __tablename__ = "notice_plays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    channel_id: Mapped[str] = mapped_column(String(64), nullable=False)
    caller: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    notice_version: Mapped[str] = mapped_column(String(80), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # playing -> completed | caller_hung_up | failed | not_told
    outcome: Mapped[str] = mapped_column(String(20), nullable=False, default="playing")
