"""Artifacts: rich outputs (markdown, tables, links, progress) that runs publish.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from conveyor.server.database.types import JSONColumn, Timestamp

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("data", JSONColumn, nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_runs.id"],
            name="fk_artifacts__flow_run_id__flow_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_artifacts__key_created", "artifacts", ["key", "created"])
    op.create_index("ix_artifacts__flow_run_id_created", "artifacts", ["flow_run_id", "created"])
    op.create_index("ix_artifacts__created", "artifacts", ["created"])


def downgrade() -> None:
    op.drop_table("artifacts")
