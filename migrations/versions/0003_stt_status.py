"""interacoes.stt_status and stt_error: a cycle whose transcription failed is told apart from silence

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: the row's cycle had no segment to transcribe (an LLM call fired by the buffer's timer).
    op.add_column("interacoes", sa.Column("stt_status", sa.Text))
    op.add_column("interacoes", sa.Column("stt_error", sa.Text))
    op.create_check_constraint(
        "interacoes_stt_status_valido", "interacoes", "stt_status IS NULL OR stt_status IN ('ok', 'vazia', 'erro')"
    )
    # Before this revision a failed transcription was stored like silence, as an empty transcript, so
    # only rows with text can be labelled; the rest stay NULL (unknown).
    op.execute("UPDATE interacoes SET stt_status = 'ok' WHERE btrim(transcricao) <> ''")


def downgrade() -> None:
    op.drop_constraint("interacoes_stt_status_valido", "interacoes", type_="check")
    op.drop_column("interacoes", "stt_error")
    op.drop_column("interacoes", "stt_status")
