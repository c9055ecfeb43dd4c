"""speaker_profiles, and the speaker columns of interacoes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

The embedding is a pgvector `vector` where the extension is available (the embedded PostgreSQL ships
it) and can be created, so the database ranks profiles by cosine distance; elsewhere it is a `real[]`
and Balto ranks the balcão's profiles in-process. The repository reads which one it got from the
catalogue, so the same code runs on both. The column has no fixed dimension: each profile records the
embedder that made it (and its size), and only profiles of the running embedder are compared.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _use_pgvector(bind: sa.Connection) -> bool:
    context = op.get_context()
    wanted = context.config.attributes.get("pgvector", True) if context.config is not None else True
    if not wanted:
        return False
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
    if not available:
        log.info("pgvector is not available on this server: speaker embeddings stored as real[]")
        return False
    try:
        # A savepoint, so a refusal (the role may not create extensions) leaves the migration usable.
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        log.warning("could not create the pgvector extension (%s): speaker embeddings stored as real[]", exc.orig)
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    embedding_type = "vector" if _use_pgvector(bind) else "real[]"
    op.create_table(
        "speaker_profiles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text),  # atendente, cliente, ...
        sa.Column("balcao_id", sa.Text),  # NULL: recognised at every balcão
        sa.Column("embedder", sa.Text, nullable=False),  # the model that made the embedding
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False, server_default="1"),  # recordings averaged
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("samples >= 1", name="speaker_profiles_samples_positive"),
        sa.CheckConstraint("dim >= 1", name="speaker_profiles_dim_positive"),
    )
    op.execute(f"ALTER TABLE speaker_profiles ADD COLUMN embedding {embedding_type} NOT NULL")
    op.create_index("ix_speaker_profiles_embedder_balcao", "speaker_profiles", ["embedder", "balcao_id"])
    op.add_column("interacoes", sa.Column("speaker_top_id", sa.Text))
    op.add_column("interacoes", sa.Column("speaker_score", sa.Float))
    op.create_index("ix_interacoes_speaker_top_id", "interacoes", ["speaker_top_id"])


def downgrade() -> None:
    op.drop_index("ix_interacoes_speaker_top_id", table_name="interacoes")
    op.drop_column("interacoes", "speaker_score")
    op.drop_column("interacoes", "speaker_top_id")
    op.drop_index("ix_speaker_profiles_embedder_balcao", table_name="speaker_profiles")
    op.drop_table("speaker_profiles")
    # The vector extension stays: other schemas in this database may use it.
