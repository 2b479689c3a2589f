"""Task-run state history moves into the task run's row (a JSON list ordered by seq).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

Existing histories are copied over, then the ``task_run_states`` table is dropped. Each
state becomes ``{"seq", "type", "name", "timestamp"}`` plus ``message``, ``details`` and
``result_ref`` when set; timestamps are ISO 8601 in UTC, as the server writes them, and
details lose the flow and task run ids the row itself carries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from conveyor.server.database.types import JSONColumn, Timestamp

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite: states are stored as naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
_SQLITE_COPY = """
UPDATE task_runs SET states = COALESCE((
    SELECT json_group_array(json(entry)) FROM (
        SELECT json_patch(
            json_object(
                'seq', s.seq, 'type', s.type, 'name', s.name,
                'timestamp', replace(s.timestamp, ' ', 'T') || '+00:00'
            ),
            json_object(
                'message', s.message,
                'details', CASE WHEN s.details = 'null' OR json_remove(s.details,
                    '$.flow_run_id', '$.task_run_id') = '{}' THEN NULL ELSE json(json_remove(
                    s.details, '$.flow_run_id', '$.task_run_id')) END,
                'result_ref', CASE WHEN s.result_ref = 'null' THEN NULL ELSE json(s.result_ref) END
            )
        ) AS entry
        FROM task_run_states AS s WHERE s.task_run_id = task_runs.id ORDER BY s.seq
    )
), '[]')
"""

_POSTGRESQL_COPY = """
UPDATE task_runs SET states = COALESCE((
    SELECT jsonb_agg(
        jsonb_strip_nulls(jsonb_build_object(
            'seq', s.seq, 'type', s.type, 'name', s.name,
            'timestamp',
                to_char(s.timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
            'message', s.message,
            'details', CASE WHEN s.details = 'null'::jsonb
                              OR s.details - 'flow_run_id' - 'task_run_id' = '{}'::jsonb
                            THEN NULL ELSE s.details - 'flow_run_id' - 'task_run_id' END,
            'result_ref', CASE WHEN s.result_ref = 'null'::jsonb THEN NULL ELSE s.result_ref END
        ))
        ORDER BY s.seq
    )
    FROM task_run_states AS s WHERE s.task_run_id = task_runs.id
), '[]'::jsonb)
"""


def upgrade() -> None:
    # (A default is what lets SQLite add a NOT NULL column to a table that has rows.)
    op.add_column("task_runs", sa.Column("states", JSONColumn, nullable=False, server_default="[]"))
    dialect = op.get_bind().dialect.name
    op.execute(_POSTGRESQL_COPY if dialect == "postgresql" else _SQLITE_COPY)
    op.drop_table("task_run_states")


def downgrade() -> None:
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
    # History written since the upgrade is not copied back: downgrades are for
    # development databases (the upgrade direction is what keeps data).
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("states")
