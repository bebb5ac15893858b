"""media node sessions: when each node took the session up (the newest alive claim wins)

Revision ID: 0005_session_taken_at
Revises: 0004_media_nodes
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_session_taken_at'
down_revision: str | None = '0004_media_nodes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Claims made before this column were all taken "then": the migration's time.
    with op.batch_alter_table('media_node_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_at', sa.DateTime(), nullable=False,
                                      server_default=sa.func.current_timestamp()))


def downgrade() -> None:
    with op.batch_alter_table('media_node_sessions', schema=None) as batch_op:
        batch_op.drop_column('taken_at')
