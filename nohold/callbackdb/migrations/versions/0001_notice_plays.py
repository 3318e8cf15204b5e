"""notice_plays: proof that each call heard the recording notice once.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_plays",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(64), nullable=False, unique=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False, server_default=""),
        sa.Column("notice_version", sa.String(80), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False, server_default="playing"),
    )


def downgrade() -> None:
    op.drop_table("notice_plays")
