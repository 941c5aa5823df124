"""cart line identity (batch, sample, side); exact room codes and share tokens; share_url

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_LINE_KEY = "uq_session_cart_items_session_id_batch_id"
NEW_LINE_KEY = "uq_session_cart_items_line"
EXACT_COLUMNS = [
    ("live_shopping_sessions", "room_code"),
    ("sales_sheets", "token"),
]


def _collate(collation: str | None) -> None:
    # Only MariaDB/MySQL compare strings loosely; SQLite's default (BINARY) is already exact.
    if op.get_bind().dialect.name != "mysql":
        return
    for table, column in EXACT_COLUMNS:
        op.alter_column(
            table,
            column,
            existing_type=sa.String(length=64),
            type_=mysql.VARCHAR(length=64, charset="utf8mb4", collation=collation),
            existing_nullable=False,
        )


def upgrade() -> None:
    # The new key first: MariaDB keeps an index on session_id for its foreign key, and the
    # new key (which starts with session_id) takes over that duty before the old one goes.
    with op.batch_alter_table("session_cart_items", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            NEW_LINE_KEY, ["session_id", "batch_id", "is_sample", "added_by_role"]
        )
        batch_op.drop_constraint(OLD_LINE_KEY, type_="unique")
    _collate("utf8mb4_nopad_bin")
    with op.batch_alter_table("sales_sheets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("share_url", sa.String(length=600), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_sheets", schema=None) as batch_op:
        batch_op.drop_column("share_url")
    _collate("utf8mb4_general_ci")
    with op.batch_alter_table("session_cart_items", schema=None) as batch_op:
        batch_op.create_unique_constraint(OLD_LINE_KEY, ["session_id", "batch_id"])
        batch_op.drop_constraint(NEW_LINE_KEY, type_="unique")
