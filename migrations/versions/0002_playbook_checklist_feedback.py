"""playbook cards, conversations and their checklist on interacoes; the feedback table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

The playbook is not "the AI": its cards get columns of their own, so recomendacao_gerada and ia_status
keep the LLM's NULL / "Nenhuma" contract exactly.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    # Which LLM provider answered (the fallback's name when it stepped in); NULL when not called.
    sa.Column("ia_provider", sa.Text),
    # The conversation (one customer) this cycle belongs to; its checklist and card history are scoped by it.
    sa.Column("conversa_id", UUID(as_uuid=False)),
    # The playbook card shown for this segment, and the rule of each suggestion (same order); NULL: no card.
    sa.Column("playbook_sugestoes", ARRAY(sa.Text)),
    sa.Column("playbook_regras", ARRAY(sa.Text)),
    # The conversation's checklist after this cycle, {"item_id": true|false}; NULL: the playbook has none.
    sa.Column("checklist", JSONB),
    sa.Column("ts_playbook_sent", sa.DateTime(timezone=True)),  # playbook recomendar frame sent
)


def upgrade() -> None:
    for column in NEW_COLUMNS:
        op.add_column("interacoes", column)
    op.create_index("ix_interacoes_conversa_id", "interacoes", ["conversa_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        # No foreign key: a card's row is written when its cycle ends, which can be after the attendant
        # has already tapped "useful"; the session checks the id belongs to the counter before storing.
        sa.Column("interacao_uuid", UUID(as_uuid=False), nullable=False),
        sa.Column("balcao_id", sa.Text, nullable=False),
        sa.Column("conexao_id", sa.Text),
        sa.Column("util", sa.Boolean, nullable=False),
        sa.Column("origem", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("origem IS NULL OR origem IN ('llm', 'playbook')", name="feedback_origem_valida"),
    )
    op.create_index("ix_feedback_interacao_uuid", "feedback", ["interacao_uuid"])


def downgrade() -> None:
    op.drop_index("ix_feedback_interacao_uuid", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_interacoes_conversa_id", table_name="interacoes")
    for column in reversed(NEW_COLUMNS):
        op.drop_column("interacoes", column.name)
