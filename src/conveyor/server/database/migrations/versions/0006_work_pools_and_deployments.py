"""Work pools, their queues and workers; deployments and their schedules; runs of them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

New ``flow_runs`` columns are added in place (every one nullable or with a server
default, so tables with rows take them on SQLite too). ``flow_runs.deployment_id`` and
``work_queue_id`` get no foreign keys: on SQLite that would mean rebuilding ``flow_runs``,
and dropping the old table inside this transaction, where foreign keys cannot be switched
off, would cascade-delete every task run, state and log. See ``orm.FlowRun``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from conveyor.server.database.types import JSONColumn, Timestamp

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_INDEXES = {
    "ix_flow_runs__work_queue_id_state_type_expected_start_time": (
        ["work_queue_id", "state_type", "expected_start_time"],
        False,
    ),
    "ix_flow_runs__deployment_id_state_type_expected_start_time": (
        ["deployment_id", "state_type", "expected_start_time"],
        False,
    ),
    "ix_flow_runs__deployment_id_idempotency_key": (["deployment_id", "idempotency_key"], True),
}

_RUN_COLUMNS = (
    "work_queue_id",
    "job_variables",
    "idempotency_key",
    "auto_scheduled",
    "worker_id",
    "last_heartbeat",
)


def upgrade() -> None:
    op.create_table(
        "work_pools",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("base_job_template", JSONColumn, nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_pools"),
        sa.UniqueConstraint("name", name="uq_work_pools__name"),
    )
    op.create_table(
        "work_queues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("work_pool_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_queues"),
        sa.ForeignKeyConstraint(
            ["work_pool_id"],
            ["work_pools.id"],
            name="fk_work_queues__work_pool_id__work_pools",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("work_pool_id", "name", name="uq_work_queues__work_pool_id_name"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("work_pool_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("last_heartbeat", Timestamp(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        sa.ForeignKeyConstraint(
            ["work_pool_id"],
            ["work_pools.id"],
            name="fk_workers__work_pool_id__work_pools",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("work_pool_id", "name", name="uq_workers__work_pool_id_name"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("entrypoint", sa.String(1000), nullable=False),
        sa.Column("source", JSONColumn, nullable=True),
        sa.Column("parameters", JSONColumn, nullable=False),
        sa.Column("parameter_schema", JSONColumn, nullable=False),
        sa.Column("work_pool_id", sa.Uuid(), nullable=True),
        sa.Column("work_queue_id", sa.Uuid(), nullable=True),
        sa.Column("job_variables", JSONColumn, nullable=False),
        sa.Column("tags", JSONColumn, nullable=False),
        sa.Column("version", sa.String(255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("collision_strategy", sa.String(20), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name="fk_deployments__flow_id__flows", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["work_pool_id"], ["work_pools.id"], name="fk_deployments__work_pool_id__work_pools"
        ),
        sa.ForeignKeyConstraint(
            ["work_queue_id"],
            ["work_queues.id"],
            name="fk_deployments__work_queue_id__work_queues",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("flow_id", "name", name="uq_deployments__flow_id_name"),
    )
    op.create_index("ix_deployments__name", "deployments", ["name"])
    op.create_index("ix_deployments__work_pool_id", "deployments", ["work_pool_id"])
    op.create_table(
        "deployment_schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("schedule", JSONColumn, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("parameters", JSONColumn, nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_schedules"),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_deployment_schedules__deployment_id__deployments",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_deployment_schedules__deployment_id_created",
        "deployment_schedules",
        ["deployment_id", "created"],
    )

    op.add_column("flow_runs", sa.Column("work_queue_id", sa.Uuid(), nullable=True))
    op.add_column(
        "flow_runs", sa.Column("job_variables", JSONColumn, nullable=False, server_default="{}")
    )
    op.add_column("flow_runs", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column(
        "flow_runs",
        sa.Column("auto_scheduled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("flow_runs", sa.Column("worker_id", sa.Uuid(), nullable=True))
    op.add_column("flow_runs", sa.Column("last_heartbeat", Timestamp(), nullable=True))
    for name, (columns, unique) in _RUN_INDEXES.items():
        op.create_index(name, "flow_runs", columns, unique=unique)


def downgrade() -> None:
    for name in _RUN_INDEXES:
        op.drop_index(name, "flow_runs")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch rebuild of flow_runs
    # would cascade-delete its children, as the docstring explains.
    for column in reversed(_RUN_COLUMNS):
        op.drop_column("flow_runs", column)
    for table in ("deployment_schedules", "deployments", "workers", "work_queues", "work_pools"):
        op.drop_table(table)
