"""Scheduled callbacks (an agreed time, an owner agent, a note); an index by state.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("scheduled", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("owner_agent", sa.String(80), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("note", sa.String(200), nullable=False, server_default=""))
    # The dialler's every-second questions (lapsed leases, expiry, a node's own) ask by
    # state across queues: without it they read every row ever written.
    op.create_index("callbacks_by_state", "callbacks", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_index("callbacks_by_state", "callbacks")
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("note")
        batch.drop_column("owner_agent")
        batch.drop_column("scheduled")
