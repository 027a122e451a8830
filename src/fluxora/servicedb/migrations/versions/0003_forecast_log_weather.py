"""forecast_log: the weather forecast each forecast used (vintage, steps that fell back)

Realized accuracy splits forecasts made with and without a weather forecast. Both columns are
nullable: rows logged before this revision, and rows of models that read no weather forecast,
have none.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("forecast_log", sa.Column("weather_issued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("forecast_log", sa.Column("weather_fallback_steps", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forecast_log") as batch:  # SQLite drops columns by rebuilding the table
        batch.drop_column("weather_fallback_steps")
        batch.drop_column("weather_issued_at")
