"""Moderation: decisions on cases, statements of reasons, webhook deliveries, complaints,
crime reports; notices record their decision.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('complaints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('decision_reference', sa.String(length=40), nullable=False),
    sa.Column('complainant', sa.String(length=20), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('status_secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_complaints_decision_reference'),
                              ['decision_reference'],
                              unique=False)

    op.create_table('crime_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('case_reference', sa.String(length=40), nullable=False),
    sa.Column('destination', sa.String(length=100), nullable=False),
    sa.Column('package', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('crime_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crime_reports_case_reference'),
                              ['case_reference'],
                              unique=False)

    op.create_table('moderation_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('case_reference', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('ground', sa.String(length=40), nullable=True),
    sa.Column('legal_ground', sa.Text(), nullable=False),
    sa.Column('facts', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=80), nullable=True),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('visibility', sa.JSON(), nullable=False),
    sa.Column('account', sa.String(length=40), nullable=True),
    sa.Column('monetary', sa.String(length=40), nullable=True),
    sa.Column('provision', sa.String(length=60), nullable=True),
    sa.Column('territorial_scope', sa.JSON(), nullable=False),
    sa.Column('content_type', sa.JSON(), nullable=False),
    sa.Column('content_location', sa.Text(), nullable=False),
    sa.Column('content_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_user', sa.String(length=200), nullable=True),
    sa.Column('hashes', sa.JSON(), nullable=True),
    sa.Column('automated_detection', sa.Boolean(), nullable=False),
    sa.Column('automated_decision', sa.String(length=40), nullable=False),
    sa.Column('complaint_secret_sha256', sa.String(length=64), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('moderation_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moderation_decisions_case_reference'),
                              ['case_reference'],
                              unique=False)

    op.create_table('statements_of_reasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('puid', sa.String(length=500), nullable=False),
    sa.Column('decision_reference', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('puid')
    )
    with op.batch_alter_table('statements_of_reasons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statements_of_reasons_decision_reference'),
                              ['decision_reference'],
                              unique=False)
        batch_op.create_index('ix_statements_pending', ['status', 'next_attempt_at'],
                              unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('event_type', sa.String(length=60), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhooks_pending', ['status', 'next_attempt_at'],
                              unique=False)

    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decision_reference', sa.String(length=40), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_column('decision_reference')
        batch_op.drop_column('decided_at')

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhooks_pending')

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('statements_of_reasons', schema=None) as batch_op:
        batch_op.drop_index('ix_statements_pending')
        batch_op.drop_index(batch_op.f('ix_statements_of_reasons_decision_reference'))

    op.drop_table('statements_of_reasons')
    with op.batch_alter_table('moderation_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_moderation_decisions_case_reference'))

    op.drop_table('moderation_decisions')
    with op.batch_alter_table('crime_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crime_reports_case_reference'))

    op.drop_table('crime_reports')
    with op.batch_alter_table('complaints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_complaints_decision_reference'))

    op.drop_table('complaints')
