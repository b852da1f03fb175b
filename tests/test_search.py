"""Neural search: similar records, semantic search, outliers (saved as a slice) and the 2D map."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from core.embeddings import embed_attribute
from core.errors import ConflictError, ValidationError
from core.search import (
    embedding_map,
    find_outliers,
    hits_frame,
    outlier_scores,
    save_outliers,
    semantic_search,
    similar_records,
)
from core.store import session_scope
from core.store.slices import SliceKind, get_slice, list_slices, save_slice
from tests.fixtures_embeddings import (  # noqa: F401
    PROJECT,
    EmbeddedProject,
    embedded_project_fixture,
    embedding_model_fixture,
    make_project,
)


def test_similar_records_find_the_near_duplicate_first(embedded_project: EmbeddedProject) -> None:
    with session_scope(embedded_project.engine) as session:
        hits = similar_records(session, project_id=embedded_project.project_id, key="1", k=4)
        frame = hits_frame(session, hits)
    assert hits[0].key == "2" and hits[0].score > 0.8
    assert "1" not in [h.key for h in hits] and len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # The other football record beats cooking and politics.
    assert hits[1].key == "6"
    assert list(frame.columns[:3]) == ["id", "score", "text"] and frame["text"][0].startswith("The striker scored two")


def test_k_larger_than_the_project_returns_every_other_record(embedded_project: EmbeddedProject) -> None:
    with session_scope(embedded_project.engine) as session:
        hits = similar_records(session, project_id=embedded_project.project_id, key="3", k=100)
        with pytest.raises(ValidationError, match="between 1 and 1000"):
            similar_records(session, project_id=embedded_project.project_id, key="3", k=0)
    assert len(hits) == embedded_project.result.records - 1


def test_semantic_search_ranks_by_meaning_not_words(embedded_project: EmbeddedProject) -> None:
    with session_scope(embedded_project.engine) as session:
        hits = semantic_search(session, project_id=embedded_project.project_id, query="a football match", k=3)
        with pytest.raises(ValidationError, match="needs a query"):
            semantic_search(session, project_id=embedded_project.project_id, query="  ")
    assert {h.key for h in hits[:2]} <= {"1", "2", "6"}


def test_outliers_without_labels_are_far_from_the_centroid(engine: Engine, embedding_model: Any) -> None:
    texts = [f"Bake the bread for {n} minutes in a hot oven." for n in ("ten", "twenty", "thirty", "forty")]
    texts += ["Fry the onions in butter.", "Whisk the eggs with sugar.", "Simmer the soup slowly.",
              "Roast the vegetables with oil.", "The stock market crashed on Monday."]
    project_id = make_project(engine, rows=[{"text": t} for t in texts])
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session:
        hits = find_outliers(session, project_id=project_id, fraction=0.3)
    assert hits[0].key == "9" and len(hits) == 3  # round(0.3 × 9)
    assert hits[0].score > hits[-1].score


def test_outliers_are_far_from_the_labeled_records_and_saved_as_a_slice(embedded_project: EmbeddedProject) -> None:
    with session_scope(embedded_project.engine) as session:
        pid = embedded_project.project_id
        hits = find_outliers(session, project_id=pid, limit=3, fraction=1.0)
        labeled = {"1", "3", "4", "5", "6", "7", "8", "9"}
        assert not labeled & {h.key for h in hits}
        assert hits[0].key == "14"  # quantum physics, far from every labeled topic
        saved = save_outliers(session, project_id=pid, hits=hits)
        again = save_outliers(session, project_id=pid, hits=hits[:1])  # re-running replaces the slice
        stored = get_slice(session, project_id=pid, name="outliers")
    assert saved.id == again.id and stored.kind == SliceKind.OUTLIER
    assert stored.record_ids == [hits[0].record_id] and stored.scores == pytest.approx([hits[0].score])


def test_outlier_score_is_the_mean_distance_to_the_reference() -> None:
    candidates = np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    reference = np.array([[0.0, 0.0], [6.0, 8.0]], dtype=np.float32)
    np.testing.assert_allclose(outlier_scores(candidates, reference), [5.0, 5.0], rtol=1e-5)
    # No reference: distance to the candidates' own centroid (1.5, 2).
    np.testing.assert_allclose(outlier_scores(candidates), [2.5, 2.5], rtol=1e-5)
    with pytest.raises(ValidationError, match="same dimension"):
        outlier_scores(candidates, np.zeros((1, 3)))


def test_map_gives_two_coordinates_per_record(embedded_project: EmbeddedProject) -> None:
    with session_scope(embedded_project.engine) as session:
        frame = embedding_map(session, project_id=embedded_project.project_id)
        sample = embedding_map(session, project_id=embedded_project.project_id, sample=5, seed=1)
    assert list(frame.columns) == ["id", "record_id", "x", "y"]
    assert len(frame) == embedded_project.result.records and frame[["x", "y"]].notna().all().all()
    by_id = frame.set_index("id")
    near = np.hypot(*(by_id.loc["1", ["x", "y"]] - by_id.loc["2", ["x", "y"]]))
    far = np.hypot(*(by_id.loc["1", ["x", "y"]] - by_id.loc["14", ["x", "y"]]))
    assert near < far
    assert len(sample) == 5 and set(sample["id"]) <= set(frame["id"])


def test_slices_store_all_three_kinds_with_checks(engine: Engine) -> None:
    project_id = make_project(engine, rows=[{"text": "a b c d e"}])
    with session_scope(engine) as session:
        save_slice(session, project_id=project_id, name="first", kind="static", record_ids=[1])
        save_slice(session, project_id=project_id, name="mine", kind="dynamic", filter={"conditions": []})
        with pytest.raises(ConflictError, match="exists already"):
            save_slice(session, project_id=project_id, name="first", kind="static", record_ids=[])
        with pytest.raises(ValidationError, match="one score per record"):
            save_slice(session, project_id=project_id, name="o", kind="outlier", record_ids=[1], scores=[])
        with pytest.raises(ValidationError, match="use one of: static, dynamic, outlier"):
            save_slice(session, project_id=project_id, name="x", kind="frozen")
        with pytest.raises(ValidationError, match="saved filter"):
            save_slice(session, project_id=project_id, name="x", kind="dynamic")
        names = [s.name for s in list_slices(session, project_id)]
        dynamic = [s.name for s in list_slices(session, project_id, kind="dynamic")]
    assert names == ["first", "mine"] and dynamic == ["mine"]
