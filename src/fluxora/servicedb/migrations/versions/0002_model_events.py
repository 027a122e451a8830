"""model_events: the service's model history, shared by restarts and workers

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.CheckConstraint("event IN ('served', 'refused')", name="ck_model_events_event"),
    )
    op.create_index("ix_model_events_at", "model_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_model_events_at", table_name="model_events")
    op.drop_table("model_events")
