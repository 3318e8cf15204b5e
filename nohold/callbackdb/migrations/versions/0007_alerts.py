"""alert_runs, alerts: the on-duty technician's alerts and their escalation (issue 10 §3).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "alert_runs",
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("run", sa.Integer, primary_key=True),
        sa.Column("started_at", tz, nullable=False),
        sa.Column("people", sa.String(400), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False, server_default="running"),
        sa.Column("why", sa.String(200), nullable=False, server_default=""),
        sa.Column("ended_at", tz),
        sa.CheckConstraint("state IN ('running', 'stopped', 'exhausted', 'nobody', "
                           "'not_alerted')", name="alert_runs_state"),
    )
    op.create_index("alert_runs_by_state", "alert_runs", ["state"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("run", sa.Integer, nullable=False),
        sa.Column("step", sa.String(80), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("person", sa.String(32), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("address", sa.String(32), nullable=False),
        sa.Column("due_at", tz, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("next_try_at", tz),
        sa.Column("holder", sa.String(64), nullable=False, server_default=""),
        sa.Column("lease_until", tz),
        sa.Column("message_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("ticket_id", "run", "step", name="alerts_step_once"),
    )
    op.create_index("alerts_by_state", "alerts", ["state", "next_try_at"])
    op.create_index("alerts_by_message", "alerts", ["message_id"])
    op.create_index("alerts_by_person", "alerts", ["person", "created_at"])


def downgrade() -> None:
    for index in ("alerts_by_person", "alerts_by_message", "alerts_by_state"):
        op.drop_index(index, "alerts")
    op.drop_table("alerts")
    op.drop_index("alert_runs_by_state", "alert_runs")
    op.drop_table("alert_runs")
