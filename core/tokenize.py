"""spaCy tokenization of text attributes, stored as character offsets.

Tokens are computed when something needs them (an extraction task on the
attribute, spans in an imported file) and stored once per record and
attribute, as refinery's tokenizer service does after an upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session

from core.errors import ValidationError
from core.store.models import Attribute, Record, RecordTokens

BATCH_SIZE = 1000
# Trained English pipelines, smallest first: their tokenizer is used when one is installed.
TRAINED_PIPELINES = ("en_core_web_sm", "en_core_web_md", "en_core_web_lg", "en_core_web_trf")
BLANK = "blank:en"


def default_tokenizer() -> str:
    """The tokenizer new projects use: an installed trained English pipeline, else ``blank:en``.

    Looked up without importing spaCy (``find_spec`` only reads the import path).
    """
    import importlib.util

    for name in TRAINED_PIPELINES:
        if importlib.util.find_spec(name) is not None:
            return name
    return BLANK


@lru_cache(maxsize=4)
def get_nlp(name: str = "blank:en") -> Any:
    """Load a spaCy pipeline once per process.

    ``blank:LANG`` gives the rule-based tokenizer with no download; any other
    name must be an installed pipeline package (``en_core_web_sm``), of which
    only the tokenizer is used.
    """
    import spacy

    if name.startswith("blank:"):
        return spacy.blank(name.split(":", 1)[1] or "en")
    try:
        return spacy.load(name, exclude=["parser", "ner", "lemmatizer", "tagger", "attribute_ruler"])
    except OSError as e:
        raise ValidationError(
            f"spaCy pipeline {name!r} is not installed; use 'blank:en' or install the package."
        ) from e


def tokenize_texts(texts: Iterable[str], *, nlp: Any = None) -> list[list[list[int]]]:
    """Character offsets ``[start, end]`` of every token of every text (end exclusive)."""
    nlp = nlp or get_nlp()
    out: list[list[list[int]]] = []
    # The tokenizer alone: a trained pipeline's other components are not needed for offsets.
    for doc in nlp.tokenizer.pipe((t or "" for t in texts), batch_size=BATCH_SIZE):
        out.append([[tok.idx, tok.idx + len(tok.text)] for tok in doc if not tok.is_space])
    return out


def char_span_to_tokens(offsets: Sequence[Sequence[int]], start: int, end: int) -> tuple[int, int] | None:
    """The token range ``[first, last + 1)`` covering characters ``[start, end)``, or None if no token overlaps."""
    first = last = None
    for i, (s, e) in enumerate(offsets):
        if e > start and s < end:
            if first is None:
                first = i
            last = i
    if first is None or last is None:
        return None
    return first, last + 1


def store_tokens(
    session: Session,
    *,
    attribute: Attribute,
    records: Sequence[tuple[int, str]],
    nlp: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, list[list[int]]]:
    """Tokenize ``(record_id, text)`` pairs and store (replace) their tokens for ``attribute``."""
    result: dict[int, list[list[int]]] = {}
    total = len(records)
    for start in range(0, total, BATCH_SIZE * 10):
        chunk = records[start : start + BATCH_SIZE * 10]
        ids = [rid for rid, _ in chunk]
        offsets = tokenize_texts((text for _, text in chunk), nlp=nlp)
        session.execute(
            delete(RecordTokens).where(
                RecordTokens.attribute_id == attribute.id,
                RecordTokens.record_id.in_(ids),  # type: ignore[attr-defined]
            )
        )
        rows = [
            {"record_id": rid, "attribute_id": attribute.id, "offsets": offs}
            for rid, offs in zip(ids, offsets, strict=True)
        ]
        if rows:
            session.execute(RecordTokens.__table__.insert(), rows)  # type: ignore[attr-defined]
        result.update(zip(ids, offsets, strict=True))
        if progress:
            progress(min(start + len(chunk), total), total)
    return result


def ensure_tokens(
    session: Session,
    *,
    attribute: Attribute,
    nlp: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Tokenize the records of the attribute's project that have no tokens for it yet; returns how many."""
    have = select(RecordTokens.record_id).where(RecordTokens.attribute_id == attribute.id)
    stmt = select(Record.id, Record.data).where(
        Record.project_id == attribute.project_id,
        Record.id.not_in(have),  # type: ignore[union-attr]
    )
    missing = [(rid, _as_text(data.get(attribute.name))) for rid, data in session.execute(stmt).all()]
    if missing:
        store_tokens(session, attribute=attribute, records=missing, nlp=nlp, progress=progress)
    return len(missing)


def load_tokens(session: Session, *, attribute_id: int, record_ids: Sequence[int]) -> dict[int, list[list[int]]]:
    """Stored token offsets of these records for one attribute."""
    out: dict[int, list[list[int]]] = {}
    for i in range(0, len(record_ids), 10_000):
        ids = list(record_ids[i : i + 10_000])
        stmt = select(RecordTokens.record_id, RecordTokens.offsets).where(
            RecordTokens.attribute_id == attribute_id,
            RecordTokens.record_id.in_(ids),  # type: ignore[attr-defined]
        )
        out.update(dict(session.execute(stmt).all()))  # type: ignore[arg-type]
    return out


def _as_text(value: object) -> str:
    return "" if value is None else str(value)
