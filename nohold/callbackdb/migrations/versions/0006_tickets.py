"""tickets, ticket_events, ticket_deliveries: the partner's tickets (issue 10 §2).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(20), nullable=False, server_default=""),
        sa.Column("customer", sa.String(32), nullable=False, server_default=""),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False, server_default="normal"),
        sa.Column("text", sa.String(4000), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("reported_at", tz, nullable=False),
        sa.Column("received_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("reports", sa.Integer, nullable=False, server_default="1"),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("acknowledged_at", tz),
        sa.Column("acknowledged_by", sa.String(80), nullable=False, server_default=""),
        sa.Column("resolved_at", tz),
        sa.Column("resolved_by", sa.String(80), nullable=False, server_default=""),
        sa.Column("resolution", sa.String(1000), nullable=False, server_default=""),
        sa.Column("reopened", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("partner_id", name="tickets_partner_id"),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')",
                           name="tickets_state"),
        sa.CheckConstraint("category IN ('outage', 'fault', 'billing', 'other')",
                           name="tickets_category"),
        sa.CheckConstraint("urgency IN ('low', 'normal', 'urgent')", name="tickets_urgency"),
    )
    op.create_index("tickets_by_state", "tickets", ["state", "received_at"])
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("at", tz, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("via", sa.String(16), nullable=False, server_default=""),
        sa.Column("actor", sa.String(80), nullable=False, server_default=""),
        sa.Column("note", sa.String(1000), nullable=False, server_default=""),
    )
    op.create_index("ticket_events_by_ticket", "ticket_events", ["ticket_id", "id"])
    op.create_table(
        "ticket_deliveries",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("received_at", tz, nullable=False),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id")),
    )
    op.create_index("ticket_deliveries_by_time", "ticket_deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_index("ticket_deliveries_by_time", "ticket_deliveries")
    op.drop_table("ticket_deliveries")
    op.drop_index("ticket_events_by_ticket", "ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("tickets_by_state", "tickets")
    op.drop_table("tickets")
