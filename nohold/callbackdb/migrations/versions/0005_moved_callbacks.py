"""Callbacks moved by a closure: when and why an agreed time was moved.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("moved_from", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("moved_why", sa.String(120), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("moved_why")
        batch.drop_column("moved_from")
