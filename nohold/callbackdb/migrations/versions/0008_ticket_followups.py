"""ticket_followups: the follow-up call of a resolved ticket (issue 10 §4).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "ticket_followups",
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("resolution", sa.Integer, primary_key=True),
        sa.Column("callback_id", sa.Integer, sa.ForeignKey("callbacks.id")),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", tz),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
        sa.Column("answered_by", sa.String(80), nullable=False, server_default=""),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.CheckConstraint("state IN ('scheduled', 'fixed', 'not_fixed', 'unreachable', "
                           "'not_scheduled')", name="ticket_followups_state"),
    )
    op.create_index("ticket_followups_by_state", "ticket_followups", ["state"])


def downgrade() -> None:
    op.drop_index("ticket_followups_by_state", "ticket_followups")
    op.drop_table("ticket_followups")
