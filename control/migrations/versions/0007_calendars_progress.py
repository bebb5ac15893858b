"""calendars and progress: private feed secrets, recording progress, a course's access term
and sequential release

Revision ID: 0007_calendars_progress
Revises: 0006_notifications
Create Date: 2026-12-02 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_calendars_progress'
down_revision: str | None = '0006_notifications'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_feeds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_calendar_feeds_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_feeds')),
    sa.UniqueConstraint('secret', name=op.f('uq_calendar_feeds_secret')),
    sa.UniqueConstraint('user_id', name=op.f('uq_calendar_feeds_user_id'))
    )
    op.create_table('recording_progress',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('position_seconds', sa.Float(), nullable=False),
    sa.Column('watched_seconds', sa.Float(), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['course_sessions.id'], name=op.f('fk_recording_progress_session_id_course_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recording_progress_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_progress')),
    sa.UniqueConstraint('session_id', 'user_id', name=op.f('uq_recording_progress_session_id'))
    )
    with op.batch_alter_table('recording_progress', schema=None) as batch_op:
        batch_op.create_index('ix_recording_progress_user_updated', ['user_id', 'updated_at'], unique=False)
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_opens_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('access_closes_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sequential_release', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('sequential_release')
        batch_op.drop_column('access_closes_at')
        batch_op.drop_column('access_opens_at')
    with op.batch_alter_table('recording_progress', schema=None) as batch_op:
        batch_op.drop_index('ix_recording_progress_user_updated')
    op.drop_table('recording_progress')
    op.drop_table('calendar_feeds')
