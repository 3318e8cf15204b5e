"""sms_outbox: SMS to customers (callback confirmations), written before sending
(issue 10 §5).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("about", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("to_number", sa.String(20), nullable=False),
        sa.Column("text", sa.String(640), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_try_at", tz),
        sa.Column("expires_at", tz, nullable=False),
        sa.Column("holder", sa.String(64), nullable=False, server_default=""),
        sa.Column("lease_until", tz),
        sa.Column("message_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("key", name="sms_outbox_once"),
    )
    op.create_index("sms_outbox_by_state", "sms_outbox", ["state", "next_try_at"])
    op.create_index("sms_outbox_by_about", "sms_outbox", ["about"])
    op.create_index("sms_outbox_by_message", "sms_outbox", ["message_id"])


def downgrade() -> None:
    for index in ("sms_outbox_by_message", "sms_outbox_by_about", "sms_outbox_by_state"):
        op.drop_index(index, "sms_outbox")
    op.drop_table("sms_outbox")
