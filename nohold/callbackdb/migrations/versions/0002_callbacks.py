"""callbacks, callback_attempts, do_not_call.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE = "state IN ('pending', 'queued', 'agent_connected', 'dialling', 'retry')"


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("queue", sa.String(80), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("arrived_at", tz, nullable=False),
        sa.Column("requested_at", tz, nullable=False),
        sa.Column("promised_earliest", tz),
        sa.Column("promised_latest", tz),
        sa.Column("expires_at", tz, nullable=False),
        sa.Column("due_at", tz),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requests", sa.Integer, nullable=False, server_default="1"),
        sa.Column("owner", sa.String(64), nullable=False, server_default=""),
        sa.Column("lease_until", tz),
        sa.Column("outcome", sa.String(40), nullable=False, server_default=""),
        sa.Column("updated_at", tz, nullable=False),
    )
    op.create_index("callbacks_one_live", "callbacks", ["number", "queue"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_index("callbacks_by_turn", "callbacks", ["queue", "state", "arrived_at"])
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("callback_id", sa.Integer, sa.ForeignKey("callbacks.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(80), nullable=False, server_default=""),
        sa.Column("agent_up_at", tz),
        sa.Column("customer_ring_at", tz),
        sa.Column("customer_answer_at", tz),
        sa.Column("bridged_at", tz),
        sa.Column("ended_at", tz),
        sa.Column("outcome", sa.String(20), nullable=False, server_default=""),
        sa.Column("cause", sa.String(40), nullable=False, server_default=""),
        sa.Column("answer_to_audio_ms", sa.Float),
        sa.UniqueConstraint("callback_id", "attempt"),
    )
    op.create_table(
        "do_not_call",
        sa.Column("number", sa.String(20), primary_key=True),
        sa.Column("added_at", tz, nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    op.drop_table("callback_attempts")
    op.drop_index("callbacks_by_turn", "callbacks")
    op.drop_index("callbacks_one_live", "callbacks")
    op.drop_table("callbacks")
