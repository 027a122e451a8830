"""users, api_keys, forecast_log

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('reader', 'admin')", name="ck_users_role"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prefix", sa.String(32), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("series", sa.JSON, nullable=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('reader', 'admin')", name="ck_api_keys_role"),
    )
    op.create_table(
        "forecast_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series_id", sa.String(200), nullable=False),
        sa.Column("origin", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
        sa.Column("quantiles", sa.JSON, nullable=True),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("consumer", sa.String(150), nullable=False),
        sa.Column("endpoint", sa.String(50), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.CheckConstraint("horizon >= 1", name="ck_forecast_log_horizon"),
    )
    op.create_index("ix_forecast_log_served_at", "forecast_log", ["served_at"])
    op.create_index("ix_forecast_log_series_id", "forecast_log", ["series_id"])


def downgrade() -> None:
    op.drop_index("ix_forecast_log_series_id", table_name="forecast_log")
    op.drop_index("ix_forecast_log_served_at", table_name="forecast_log")
    op.drop_table("forecast_log")
    op.drop_table("api_keys")
    op.drop_table("users")
