"""Initial tables: flows, flow runs and their states, task runs and their states, logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Written by hand to match ``orm.py`` exactly on SQLite and PostgreSQL (the column types
come from ``types.py``, as in the ORM); ``tests/server/database/test_migrations.py`` pins
that. Constraint and index names follow ``orm.NAMING`` and are spelled out, so later
migrations can refer to them on both dialects.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from conveyor.server.database.types import JSONColumn, Timestamp

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tags", JSONColumn, nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flows"),
        sa.UniqueConstraint("name", name="uq_flows__name"),
    )

    op.create_table(
        "flow_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("flow_version", sa.String(255), nullable=True),
        sa.Column("parameters", JSONColumn, nullable=False),
        sa.Column("tags", JSONColumn, nullable=False),
        sa.Column("parent_flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("parent_task_run_id", sa.Uuid(), nullable=True),
        sa.Column("deployment_id", sa.Uuid(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay_seconds", sa.Double(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("state_type", sa.String(20), nullable=True),
        sa.Column("state_name", sa.String(50), nullable=True),
        sa.Column("state_timestamp", Timestamp(), nullable=True),
        sa.Column("state_id", sa.Uuid(), nullable=True),
        sa.Column("expected_start_time", Timestamp(), nullable=True),
        sa.Column("start_time", Timestamp(), nullable=True),
        sa.Column("end_time", Timestamp(), nullable=True),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flow_runs"),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name="fk_flow_runs__flow_id__flows", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_flow_run_id"],
            ["flow_runs.id"],
            name="fk_flow_runs__parent_flow_run_id__flow_runs",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_flow_runs__flow_id_created", "flow_runs", ["flow_id", "created"])
    op.create_index("ix_flow_runs__state_type_created", "flow_runs", ["state_type", "created"])
    op.create_index("ix_flow_runs__parent_flow_run_id", "flow_runs", ["parent_flow_run_id"])
    op.create_index("ix_flow_runs__expected_start_time", "flow_runs", ["expected_start_time"])
    op.create_index("ix_flow_runs__created", "flow_runs", ["created"])
    op.create_index(
        "ix_flow_runs__deployment_id_created", "flow_runs", ["deployment_id", "created"]
    )

    op.create_table(
        "flow_run_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("details", JSONColumn, nullable=False),
        sa.Column("result_ref", JSONColumn, nullable=True),
        sa.Column("transition_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_flow_run_states"),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_runs.id"],
            name="fk_flow_run_states__flow_run_id__flow_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "flow_run_id", "transition_id", name="uq_flow_run_states__flow_run_id_transition_id"
        ),
    )
    op.create_index(
        "ix_flow_run_states__flow_run_id_timestamp",
        "flow_run_states",
        ["flow_run_id", "timestamp"],
    )

    op.create_table(
        "task_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("task_key", sa.String(1000), nullable=False),
        sa.Column("task_version", sa.String(255), nullable=True),
        sa.Column("dynamic_key", sa.String(255), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=True),
        sa.Column("tags", JSONColumn, nullable=False),
        sa.Column("task_inputs", JSONColumn, nullable=False),
        sa.Column("cache_key", sa.String(1000), nullable=True),
        sa.Column("state_type", sa.String(20), nullable=True),
        sa.Column("state_name", sa.String(50), nullable=True),
        sa.Column("state_timestamp", Timestamp(), nullable=True),
        sa.Column("state_seq", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("start_time", Timestamp(), nullable=True),
        sa.Column("end_time", Timestamp(), nullable=True),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_runs"),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_runs.id"],
            name="fk_task_runs__flow_run_id__flow_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_task_runs__flow_run_id_created", "task_runs", ["flow_run_id", "created"])
    op.create_index("ix_task_runs__state_type_created", "task_runs", ["state_type", "created"])
    op.create_index("ix_task_runs__created", "task_runs", ["created"])

    op.create_table(
        "task_run_states",
        sa.Column("task_run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("details", JSONColumn, nullable=False),
        sa.Column("result_ref", JSONColumn, nullable=True),
        sa.PrimaryKeyConstraint("task_run_id", "seq", name="pk_task_run_states"),
        sa.ForeignKeyConstraint(
            ["task_run_id"],
            ["task_runs.id"],
            name="fk_task_run_states__task_run_id__task_runs",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "logs",
        # BIGSERIAL on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the rowid alias
        # that autoincrements.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        sa.Column("key", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_logs"),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_runs.id"],
            name="fk_logs__flow_run_id__flow_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("key", name="uq_logs__key"),
    )
    op.create_index("ix_logs__flow_run_id_id", "logs", ["flow_run_id", "id"])
    op.create_index("ix_logs__task_run_id_id", "logs", ["task_run_id", "id"])
    op.create_index("ix_logs__timestamp", "logs", ["timestamp"])


def downgrade() -> None:
    # Children before parents, so no foreign key is left pointing at a dropped table.
    for table in ("logs", "task_run_states", "task_runs", "flow_run_states", "flow_runs", "flows"):
        op.drop_table(table)
