"""What colours the embedding map: manual labels, weak-supervision labels and confidence, a heuristic's votes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.embedding_heuristics import add_zero_shot
from core.embeddings import embed_attribute
from core.errors import NotFoundError, ValidationError
from core.map_colors import map_colors
from core.store import session_scope
from core.store.tasks import get_task
from core.weak_supervision import run_weak_supervision
from tests.fixtures_embeddings import PROJECT, ROWS, embedding_model_fixture, make_project  # noqa: F401


def test_each_layer_gives_one_value_per_record(engine: Engine, embedding_model: Any) -> None:
    project_id = make_project(engine)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session:
        task_id = get_task(session, project_id, "topic").id or 0
        zero = add_zero_shot(session, project_id=project_id, task_id=task_id, min_confidence=0.0)
    run_weak_supervision(engine, project_id=project_id, task_id=task_id)
    records = range(1, len(ROWS) + 1)  # record ids follow the import order
    with session_scope(engine) as session:
        manual = map_colors(session, task_id=task_id, by="manual", record_ids=records)
        ws = map_colors(session, task_id=task_id, by="weak_supervision", record_ids=records)
        confidence = map_colors(session, task_id=task_id, by="confidence", record_ids=records)
        votes = map_colors(session, task_id=task_id, by="heuristic", record_ids=records,
                           heuristic_id=zero.heuristic_id)
        only_two = map_colors(session, task_id=task_id, by="manual", record_ids=[1, 2])
        with pytest.raises(ValidationError, match="needs the heuristic"):
            map_colors(session, task_id=task_id, by="heuristic", record_ids=records)
        with pytest.raises(NotFoundError, match="no heuristic with id 999"):
            map_colors(session, task_id=task_id, by="heuristic", record_ids=records, heuristic_id=999)
        with pytest.raises(ValidationError, match="Colour the map by one of"):
            map_colors(session, task_id=task_id, by="colour", record_ids=records)  # type: ignore[arg-type]
    expected = {i + 1: row["__topic"] for i, row in enumerate(ROWS) if row["__topic"]}
    assert manual == expected and only_two == {1: "sports"}
    assert len(votes) == 15 and votes[14] in {"sports", "cooking", "politics"}  # 16 has no text, no vote
    assert ws == votes  # a single heuristic: weak supervision follows it
    assert set(confidence) == set(ws) and all(0.0 < c <= 1.0 for c in confidence.values())
