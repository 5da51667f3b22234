"""incidents: harassment warnings (민원차단)

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import contactd.store.models.base

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("call_linkedid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=40), nullable=False),
        sa.Column("caller_name", sa.String(length=100), nullable=False),
        sa.Column("agent_user_id", sa.Integer(), nullable=True),
        sa.Column("agent_extension", sa.String(length=4), nullable=True),
        sa.Column("blacklisted", sa.Boolean(), nullable=False),
        sa.Column("created_at", contactd.store.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_user_id"], ["users.id"], name=op.f("fk_incidents_agent_user_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_agent_user_id"), ["agent_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_call_linkedid"), ["call_linkedid"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_caller_number"), ["caller_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_created_at"))
        batch_op.drop_index(batch_op.f("ix_incidents_caller_number"))
        batch_op.drop_index(batch_op.f("ix_incidents_call_linkedid"))
        batch_op.drop_index(batch_op.f("ix_incidents_agent_user_id"))
    op.drop_table("incidents")
