"""Notifier misuse (DSA Art. 23(2)): decisions mark notices manifestly unfounded; notices are
found by notifier.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moderation_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manifestly_unfounded", sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index("ix_notices_flagger", ["trusted_flagger"], unique=False)
        batch_op.create_index("ix_notices_notifier", ["notifier_email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_notifier")
        batch_op.drop_index("ix_notices_flagger")
    with op.batch_alter_table("moderation_decisions", schema=None) as batch_op:
        batch_op.drop_column("manifestly_unfounded")
