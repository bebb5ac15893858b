"""courses.retention_days (recordings kept this many days; NULL: forever) and
users.erased_at (the person was erased: anonymised, never signs in again)

Revision ID: 0008_retention_and_erasure
Revises: 0007_calendars_progress
Create Date: 2026-12-02 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_retention_and_erasure'
down_revision: str | None = '0007_calendars_progress'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('retention_days')
