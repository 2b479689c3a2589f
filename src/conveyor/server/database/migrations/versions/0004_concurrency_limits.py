"""Concurrency limits and the leases that hold their slots.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from conveyor.server.database.types import Timestamp

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "concurrency_limits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_concurrency_limits"),
        sa.UniqueConstraint("name", name="uq_concurrency_limits__name"),
    )
    op.create_table(
        "concurrency_leases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("limit_id", sa.Uuid(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("expires", Timestamp(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_concurrency_leases"),
        sa.ForeignKeyConstraint(
            ["limit_id"],
            ["concurrency_limits.id"],
            name="fk_concurrency_leases__limit_id__concurrency_limits",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_concurrency_leases__limit_id_expires", "concurrency_leases", ["limit_id", "expires"]
    )


def downgrade() -> None:
    op.drop_table("concurrency_leases")
    op.drop_table("concurrency_limits")
