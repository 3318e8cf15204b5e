"""calendar_overrides: the business calendar's closed and open periods set at run time.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "calendar_overrides",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("calendar", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("starts_at", tz, nullable=False),
        sa.Column("ends_at", tz, nullable=False),
        sa.Column("expires_at", tz),
        sa.Column("note", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
        sa.CheckConstraint("kind IN ('closed', 'open')", name="calendar_overrides_kind"),
        sa.CheckConstraint("starts_at < ends_at", name="calendar_overrides_period"),
    )
    op.create_index("calendar_overrides_by_end", "calendar_overrides", ["calendar", "ends_at"])


def downgrade() -> None:
    op.drop_index("calendar_overrides_by_end", "calendar_overrides")
    op.drop_table("calendar_overrides")
