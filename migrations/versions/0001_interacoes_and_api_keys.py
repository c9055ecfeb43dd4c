"""interacoes and api_keys

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMPS = (
    "ts_audio_received",  # bytes of the segment's first frame arrived
    "ts_segment_closed",  # VAD closed the segment
    "ts_trans_req",  # transcription requested
    "ts_trans_resp",  # transcription received
    "ts_trans_sent",  # transcript frame sent to the counter
    "ts_ai_req",  # LLM requested
    "ts_ai_resp",  # LLM answered
    "ts_rec_sent",  # recomendar frame sent to the counter
)


def upgrade() -> None:
    op.create_table(
        "interacoes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uuid", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("balcao_id", sa.Text, nullable=False),
        sa.Column("conexao_id", sa.Text),
        sa.Column("transcricao", sa.Text),
        sa.Column("transcricao_completa", sa.Text),
        sa.Column("recomendacao_gerada", sa.Text),
        sa.Column("grok_raw_response", sa.Text),
        sa.Column("speaker_data", sa.Text),
        sa.Column("ia_status", sa.Text, nullable=False, server_default="nao_chamada"),
        sa.Column("buffer_acao", sa.Text),
        sa.Column("segmento_inicio", sa.Float),
        sa.Column("segmento_fim", sa.Float),
        sa.Column("stt_provider", sa.Text),
        sa.Column("stt_latency_ms", sa.Float),
        *(sa.Column(name, sa.DateTime(timezone=True)) for name in TIMESTAMPS),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "ia_status IN ('nao_chamada', 'ok', 'vazia', 'erro', 'timeout')", name="interacoes_ia_status_valido"
        ),
    )
    op.create_index("ix_interacoes_balcao_id_id", "interacoes", ["balcao_id", sa.text("id DESC")])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("balcao_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_interacoes_balcao_id_id", table_name="interacoes")
    op.drop_table("interacoes")
