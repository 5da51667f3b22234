"""ivr: blacklist, blocked attempts, callbacks, business hours, holidays

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import contactd.store.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blacklist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", contactd.store.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_blacklist_created_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blacklist")),
        sa.UniqueConstraint("number", name=op.f("uq_blacklist_number")),
    )

    op.create_table(
        "blocked_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("at", contactd.store.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocked_attempts")),
    )
    with op.batch_alter_table("blocked_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blocked_attempts_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_blocked_attempts_number"), ["number"], unique=False)

    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("caller_id", sa.String(length=40), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("captured_at", contactd.store.models.base.UTCDateTime(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("done_at", contactd.store.models.base.UTCDateTime(), nullable=True),
        sa.Column("done_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_callbacks_customer_id_customers"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["done_by"], ["users.id"], name=op.f("fk_callbacks_done_by_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callbacks_captured_at"), ["captured_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_callbacks_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_callbacks_done"), ["done"], unique=False)
        batch_op.create_index(batch_op.f("ix_callbacks_number"), ["number"], unique=False)

    op.create_table(
        "business_hours",
        sa.Column("weekday", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("open", sa.String(length=5), nullable=True),
        sa.Column("close", sa.String(length=5), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("weekday", name=op.f("pk_business_hours")),
    )

    op.create_table(
        "holidays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holidays")),
        sa.UniqueConstraint("date", name=op.f("uq_holidays_date")),
    )


def downgrade() -> None:
    op.drop_table("holidays")
    op.drop_table("business_hours")
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callbacks_number"))
        batch_op.drop_index(batch_op.f("ix_callbacks_done"))
        batch_op.drop_index(batch_op.f("ix_callbacks_customer_id"))
        batch_op.drop_index(batch_op.f("ix_callbacks_captured_at"))
    op.drop_table("callbacks")
    with op.batch_alter_table("blocked_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blocked_attempts_number"))
        batch_op.drop_index(batch_op.f("ix_blocked_attempts_at"))
    op.drop_table("blocked_attempts")
    op.drop_table("blacklist")
