"""PostgreSQL repositories (SQLAlchemy async Core + asyncpg); rows are mapped to domain objects here."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from balto.domain.interaction import Feedback, IaStatus, Interaction, SttStatus, Suggestion
from balto.domain.keys import ApiKey, generate_key, hash_key, key_prefix
from balto.domain.speaker import SpeakerMatch, SpeakerProfile, unit
from balto.ports.storage import (
    ApiKeyRepository,
    FeedbackRepository,
    InteractionRepository,
    SpeakerProfileRepository,
)

metadata = sa.MetaData()

TIMESTAMP_COLUMNS = (
    "ts_audio_received",
    "ts_segment_closed",
    "ts_trans_req",
    "ts_trans_resp",
    "ts_trans_sent",
    "ts_ai_req",
    "ts_ai_resp",
    "ts_rec_sent",
    "ts_playbook_sent",
)

# The schema itself is owned by alembic (migrations/); these tables mirror it for queries.
interacoes = sa.Table(
    "interacoes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uuid", UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("balcao_id", sa.Text, nullable=False),
    sa.Column("conexao_id", sa.Text),
    sa.Column("transcricao", sa.Text),
    sa.Column("transcricao_completa", sa.Text),
    sa.Column("recomendacao_gerada", sa.Text),
    sa.Column("grok_raw_response", sa.Text),
    sa.Column("speaker_data", sa.Text),
    sa.Column("speaker_top_id", sa.Text),
    sa.Column("speaker_score", sa.Float),
    sa.Column("ia_status", sa.Text, nullable=False),
    sa.Column("buffer_acao", sa.Text),
    sa.Column("segmento_inicio", sa.Float),
    sa.Column("segmento_fim", sa.Float),
    sa.Column("stt_provider", sa.Text),
    sa.Column("stt_latency_ms", sa.Float),
    sa.Column("ia_provider", sa.Text),
    sa.Column("conversa_id", UUID(as_uuid=False)),
    sa.Column("playbook_sugestoes", ARRAY(sa.Text)),
    sa.Column("playbook_regras", ARRAY(sa.Text)),
    sa.Column("checklist", JSONB),
    sa.Column("stt_status", sa.Text),
    sa.Column("stt_error", sa.Text),
    *(sa.Column(name, sa.DateTime(timezone=True)) for name in TIMESTAMP_COLUMNS),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("interacao_uuid", UUID(as_uuid=False), nullable=False),
    sa.Column("balcao_id", sa.Text, nullable=False),
    sa.Column("conexao_id", sa.Text),
    sa.Column("util", sa.Boolean, nullable=False),
    sa.Column("origem", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("balcao_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


def create_engine(url: str) -> AsyncEngine:
    return create_async_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _parse_suggestions(recomendacao: str | None) -> tuple[Suggestion, ...]:
    if not recomendacao or recomendacao == "Nenhuma":
        return ()
    return tuple(Suggestion(part.strip()[3:]) for part in recomendacao.split(" | ") if part.strip().startswith("S: "))


class PostgresInteractionRepository(InteractionRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def _values(interaction: Interaction) -> dict[str, object]:
        return {
            "uuid": interaction.uuid,
            "balcao_id": interaction.balcao_id,
            "conexao_id": interaction.conexao_id,
            "transcricao": interaction.transcricao,
            "transcricao_completa": interaction.transcricao_completa,
            "recomendacao_gerada": interaction.recomendacao_gerada,
            "grok_raw_response": interaction.grok_raw_response,
            "speaker_data": interaction.speaker_data,
            "speaker_top_id": None if interaction.speaker is None else interaction.speaker.top_id,
            "speaker_score": None if interaction.speaker is None else interaction.speaker.score,
            "ia_status": interaction.ia_status.value,
            "buffer_acao": interaction.buffer_acao,
            "segmento_inicio": interaction.segmento_inicio,
            "segmento_fim": interaction.segmento_fim,
            "stt_provider": interaction.stt_provider,
            "stt_latency_ms": interaction.stt_latency_ms,
            "ia_provider": interaction.ia_provider,
            "conversa_id": interaction.conversa_id,
            # Two aligned arrays: the i-th rule produced the i-th suggestion. NULL, not {}, when no card.
            "playbook_sugestoes": [s.text for s in interaction.playbook_suggestions] or None,
            "playbook_regras": [s.rule or "" for s in interaction.playbook_suggestions] or None,
            "checklist": interaction.checklist,
            "stt_status": None if interaction.stt_status is None else interaction.stt_status.value,
            "stt_error": interaction.stt_error,
            **{name: _ts(getattr(interaction, name)) for name in TIMESTAMP_COLUMNS},
        }

    async def add(self, interaction: Interaction) -> int:
        values = self._values(interaction)
        # The uuid is the idempotency key: a retried write returns the row that is already there.
        statement = (
            insert(interacoes)
            .values(**values)
            .on_conflict_do_update(index_elements=["uuid"], set_={"uuid": interacoes.c.uuid})
            .returning(interacoes.c.id)
        )
        async with self._engine.begin() as conn:
            row_id = (await conn.execute(statement)).scalar_one()
        interaction.id = row_id
        return row_id

    async def add_many(self, interactions: list[Interaction]) -> None:
        """Store several cycles in one transaction (the write queue's batches); uuids already stored are
        skipped, so replaying a journal that partly reached the database duplicates nothing."""
        if not interactions:
            return
        # executemany form: one statement compiled once and cached (SQLAlchemy sends it as batched
        # "insertmanyvalues"), where a multi-row VALUES compiled anew for every batch size, on the loop.
        statement = insert(interacoes).on_conflict_do_nothing(index_elements=["uuid"])
        async with self._engine.begin() as conn:
            await conn.execute(statement, [self._values(i) for i in interactions])

    async def get(self, uuid: str) -> Interaction | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(interacoes).where(interacoes.c.uuid == uuid))).mappings().first()
        return None if row is None else self._to_domain(row)

    async def list_recent(self, balcao_id: str | None = None, limit: int = 50) -> list[Interaction]:
        query = sa.select(interacoes).order_by(interacoes.c.id.desc()).limit(limit)
        if balcao_id is not None:
            query = query.where(interacoes.c.balcao_id == balcao_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [self._to_domain(row) for row in rows]

    @staticmethod
    def _to_domain(row: sa.RowMapping) -> Interaction:
        interaction = Interaction(
            balcao_id=row["balcao_id"],
            conexao_id=row["conexao_id"],
            uuid=str(row["uuid"]),
            id=row["id"],
            transcricao=row["transcricao"],
            transcricao_completa=row["transcricao_completa"],
            segmento_inicio=row["segmento_inicio"],
            segmento_fim=row["segmento_fim"],
            buffer_acao=row["buffer_acao"],
            ia_status=IaStatus(row["ia_status"]),
            suggestions=_parse_suggestions(row["recomendacao_gerada"]),
            grok_raw_response=row["grok_raw_response"],
            stt_provider=row["stt_provider"],
            stt_latency_ms=row["stt_latency_ms"],
            stt_status=None if row["stt_status"] is None else SttStatus(row["stt_status"]),
            stt_error=row["stt_error"],
            speaker=SpeakerMatch.from_json(row["speaker_data"]) if row["speaker_data"] else None,
            ia_provider=row["ia_provider"],
            conversa_id=None if row["conversa_id"] is None else str(row["conversa_id"]),
            playbook_suggestions=tuple(
                Suggestion(text, source="playbook", rule=rule or None)
                for text, rule in zip(row["playbook_sugestoes"] or (), row["playbook_regras"] or (), strict=True)
            ),
            checklist=row["checklist"],
            **{name: _epoch(row[name]) for name in TIMESTAMP_COLUMNS},
        )
        return interaction


class PostgresFeedbackRepository(FeedbackRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, feedback: Feedback) -> int:
        statement = (
            sa.insert(feedback_table)
            .values(
                interacao_uuid=feedback.interacao_uuid,
                balcao_id=feedback.balcao_id,
                conexao_id=feedback.conexao_id,
                util=feedback.util,
                origem=feedback.origem,
            )
            .returning(feedback_table.c.id, feedback_table.c.created_at)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(statement)).one()
        feedback.id, feedback.created_at = row.id, _epoch(row.created_at)
        return row.id

    async def list_for(self, interacao_uuid: str) -> list[Feedback]:
        table = feedback_table
        query = sa.select(table).where(table.c.interacao_uuid == interacao_uuid).order_by(table.c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Feedback(
                interacao_uuid=str(row["interacao_uuid"]),
                balcao_id=row["balcao_id"],
                util=row["util"],
                origem=row["origem"],
                conexao_id=row["conexao_id"],
                id=row["id"],
                created_at=_epoch(row["created_at"]),
            )
            for row in rows
        ]


class PostgresApiKeyRepository(ApiKeyRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, balcao_id: str) -> tuple[ApiKey, str]:
        if not balcao_id.strip():
            raise ValueError("balcao_id must not be empty")
        plain = generate_key()
        statement = (
            sa.insert(api_keys)
            .values(key_hash=hash_key(plain), prefix=key_prefix(plain), balcao_id=balcao_id)
            .returning(api_keys)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(statement)).mappings().one()
        return self._to_domain(row), plain

    async def resolve(self, plain_key: str) -> ApiKey | None:
        digest = hash_key(plain_key)
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest))).mappings().first()
        # The index lookup already matched; the constant-time comparison keeps the final check from
        # leaking anything through timing should the lookup ever become a prefix or range scan.
        if row is None or not hmac.compare_digest(row["key_hash"], digest) or row["revoked_at"] is not None:
            return None
        return self._to_domain(row)

    async def revoke(self, key_id: int) -> bool:
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=sa.func.now())
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(statement)
        return result.rowcount == 1

    async def list(self) -> list[ApiKey]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.id))).mappings().all()
        return [self._to_domain(row) for row in rows]

    @staticmethod
    def _to_domain(row: sa.RowMapping) -> ApiKey:
        return ApiKey(
            id=row["id"],
            balcao_id=row["balcao_id"],
            prefix=row["prefix"],
            revoked=row["revoked_at"] is not None,
            created_at=_epoch(row["created_at"]),
        )


# The embedding column is `vector` or `real[]` (see migration 0004), so it is not in this mirror: the
# profile queries below cast it to real[] to read it, and from real[] to write it.
speaker_profiles = sa.Table(
    "speaker_profiles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text),
    sa.Column("balcao_id", sa.Text),
    sa.Column("embedder", sa.Text, nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

_PROFILE_COLUMNS = (
    "id, name, role, balcao_id, embedder, dim, samples, created_at, updated_at, embedding::real[] AS embedding"
)
_USABLE = "embedder = :embedder AND dim = :dim AND (balcao_id = :balcao_id OR balcao_id IS NULL)"


def _profile_id(profile_id: str) -> int | None:
    try:
        return int(profile_id)
    except (TypeError, ValueError):
        return None


class PostgresSpeakerProfileRepository(SpeakerProfileRepository):
    """Voice profiles. Where the column is a pgvector `vector`, `search` ranks by cosine distance in the
    database (`<=>`); where it is `real[]` (no pgvector), it loads the balcão's profiles and ranks them
    in-process. `use_pgvector=False` forces the in-process path on a `vector` column too."""

    def __init__(self, engine: AsyncEngine, use_pgvector: bool | None = None) -> None:
        self._engine = engine
        self._requested = use_pgvector
        self._pgvector: bool | None = None

    async def uses_pgvector(self) -> bool:
        if self._pgvector is None:
            async with self._engine.connect() as conn:
                column_type = (
                    await conn.execute(
                        sa.text(
                            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                            "WHERE attrelid = 'speaker_profiles'::regclass AND attname = 'embedding'"
                        )
                    )
                ).scalar_one()
            is_vector = column_type.startswith("vector")
            if self._requested and not is_vector:
                raise RuntimeError("speaker_profiles.embedding is real[]: this database has no pgvector")
            self._pgvector = is_vector and self._requested is not False
        return self._pgvector

    async def add(self, profile: SpeakerProfile) -> SpeakerProfile:
        if not profile.name.strip():
            raise ValueError("a profile needs a name")
        if not profile.embedder:
            raise ValueError("a profile must say which embedder made it")
        embedding = unit(profile.embedding)
        statement = sa.text(
            "INSERT INTO speaker_profiles (name, role, balcao_id, embedder, dim, samples, embedding) "
            "VALUES (:name, :role, :balcao_id, :embedder, :dim, :samples, CAST(:embedding AS real[])) "
            f"RETURNING {_PROFILE_COLUMNS}"
        )
        params = {
            "name": profile.name,
            "role": profile.role,
            "balcao_id": profile.balcao_id,
            "embedder": profile.embedder,
            "dim": int(embedding.size),
            "samples": profile.samples,
            "embedding": embedding.tolist(),
        }
        async with self._engine.begin() as conn:
            row = (await conn.execute(statement, params)).mappings().one()
        return self._to_domain(row)

    async def get(self, profile_id: str) -> SpeakerProfile | None:
        key = _profile_id(profile_id)
        if key is None:
            return None
        statement = sa.text(f"SELECT {_PROFILE_COLUMNS} FROM speaker_profiles WHERE id = :id")
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement, {"id": key})).mappings().first()
        return None if row is None else self._to_domain(row)

    async def delete(self, profile_id: str) -> bool:
        key = _profile_id(profile_id)
        if key is None:
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(sa.delete(speaker_profiles).where(speaker_profiles.c.id == key))
        return result.rowcount == 1

    async def search(self, embedding: np.ndarray, balcao_id: str, embedder: str) -> list[tuple[SpeakerProfile, float]]:
        query = unit(embedding)
        params = {"embedder": embedder, "dim": int(query.size), "balcao_id": balcao_id}
        if await self.uses_pgvector():
            distance = "embedding <=> CAST(CAST(:query AS real[]) AS vector)"  # pgvector's cosine distance
            statement = sa.text(
                f"SELECT {_PROFILE_COLUMNS}, 1 - ({distance}) AS score "
                f"FROM speaker_profiles WHERE {_USABLE} ORDER BY {distance}, id"
            )
            async with self._engine.connect() as conn:
                rows = (await conn.execute(statement, {**params, "query": query.tolist()})).mappings().all()
            return [(self._to_domain(row), float(row["score"])) for row in rows]
        statement = sa.text(f"SELECT {_PROFILE_COLUMNS} FROM speaker_profiles WHERE {_USABLE} ORDER BY id")
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement, params)).mappings().all()
        profiles = [self._to_domain(row) for row in rows]
        if not profiles:
            return []
        scores = np.stack([p.embedding for p in profiles]).astype(np.float64) @ query.astype(np.float64)
        order = sorted(range(len(profiles)), key=lambda i: -scores[i])  # stable: ties keep id order
        return [(profiles[i], float(scores[i])) for i in order]

    async def list(self, balcao_id: str | None = None, embedder: str | None = None) -> list[SpeakerProfile]:
        conditions, params = [], {}
        if balcao_id is not None:
            conditions.append("(balcao_id = :balcao_id OR balcao_id IS NULL)")
            params["balcao_id"] = balcao_id
        if embedder is not None:
            conditions.append("embedder = :embedder")
            params["embedder"] = embedder
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        statement = sa.text(f"SELECT {_PROFILE_COLUMNS} FROM speaker_profiles {where} ORDER BY id")
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement, params)).mappings().all()
        return [self._to_domain(row) for row in rows]

    @staticmethod
    def _to_domain(row: sa.RowMapping) -> SpeakerProfile:
        return SpeakerProfile(
            id=str(row["id"]),
            name=row["name"],
            role=row["role"],
            balcao_id=row["balcao_id"],
            embedder=row["embedder"],
            samples=row["samples"],
            embedding=np.asarray(row["embedding"], dtype=np.float32),
            created_at=_epoch(row["created_at"]),
            updated_at=_epoch(row["updated_at"]),
        )
