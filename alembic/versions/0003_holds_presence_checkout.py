"""hold deadline and its warning, presence, the answer to a checkout request

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
# Sessions made before this revision keep holds for the default timeout after their last
# activity (the timeout they were made with was not recorded).
DEFAULT_TIMEOUT_MINS = 120


def upgrade() -> None:
    with op.batch_alter_table("live_shopping_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkout_answered_at", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("checkout_accepted", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("checkout_message", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("holds_expire_at", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("holds_warned_for", TIMESTAMP, nullable=True))
        batch_op.add_column(
            sa.Column("host_present", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("client_present", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    _backfill_deadlines()
    with op.batch_alter_table("live_shopping_sessions", schema=None) as batch_op:
        batch_op.alter_column("holds_expire_at", existing_type=TIMESTAMP, nullable=False)
        batch_op.alter_column("host_present", existing_type=sa.Boolean(), server_default=None)
        batch_op.alter_column("client_present", existing_type=sa.Boolean(), server_default=None)

    op.create_table(
        "session_presence",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column(
            "side",
            sa.Enum("HOST", "CLIENT", name="presenceside", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["live_shopping_sessions.id"],
            name=op.f("fk_session_presence_session_id_live_shopping_sessions"),
        ),
        sa.PrimaryKeyConstraint("session_id", "side", "worker", name=op.f("pk_session_presence")),
    )
    with op.batch_alter_table("session_presence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_presence_seen_at"), ["seen_at"], unique=False)


def _backfill_deadlines() -> None:
    # Row by row in Python: date arithmetic differs between SQLite and MariaDB.
    from datetime import timedelta

    bind = op.get_bind()
    sessions = sa.table(
        "live_shopping_sessions",
        sa.column("id", sa.Integer()),
        sa.column("last_activity_at", TIMESTAMP),
        sa.column("holds_expire_at", TIMESTAMP),
    )
    rows = bind.execute(sa.select(sessions.c.id, sessions.c.last_activity_at)).all()
    for session_id, last_activity_at in rows:
        bind.execute(
            sessions.update()
            .where(sessions.c.id == session_id)
            .values(holds_expire_at=last_activity_at + timedelta(minutes=DEFAULT_TIMEOUT_MINS))
        )


def downgrade() -> None:
    with op.batch_alter_table("session_presence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_presence_seen_at"))
    op.drop_table("session_presence")
    with op.batch_alter_table("live_shopping_sessions", schema=None) as batch_op:
        for column in (
            "client_present",
            "host_present",
            "holds_warned_for",
            "holds_expire_at",
            "checkout_message",
            "checkout_accepted",
            "checkout_answered_at",
        ):
            batch_op.drop_column(column)
