"""course_resources: files attached to a course or one of its sessions

Revision ID: 0009_course_resources
Revises: 0008_retention_and_erasure
Create Date: 2026-12-02 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_course_resources'
down_revision: str | None = '0008_retention_and_erasure'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('course_resources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_course_resources_course_id_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['course_sessions.id'], name=op.f('fk_course_resources_session_id_course_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_course_resources_uploaded_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_course_resources')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_course_resources_storage_key'))
    )
    with op.batch_alter_table('course_resources', schema=None) as batch_op:
        batch_op.create_index('ix_course_resources_course_session', ['course_id', 'session_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('course_resources', schema=None) as batch_op:
        batch_op.drop_index('ix_course_resources_course_session')
    op.drop_table('course_resources')
