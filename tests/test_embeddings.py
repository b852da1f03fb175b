"""Embeddings: stored once per text, cached across runs and projects, indexed in Chroma; CLI; heuristics."""

from __future__ import annotations

import json
import shutil
import threading
import time
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

import core.embeddings as embeddings_module
import core.index as index_module
from core.active_learning import ActiveLearner, run_active_learner
from core.cli import main
from core.embeddings import DEFAULT_MODEL, embed_attribute, load_model, text_hash
from core.errors import NotFoundError, ValidationError
from core.importers import import_file
from core.index import (
    IndexStatus,
    collection_name,
    drop_index,
    ensure_index,
    get_client,
    index_status,
    load_chroma_settings,
    reset_clients,
)
from core.search import similar_records
from core.store import session_scope
from core.store.embeddings import (
    EmbeddingVector,
    PendingRecords,
    RecordEmbedding,
    ensure_space_uids,
    get_or_create_space,
    load_vectors,
    pending_records,
    prune_vectors,
    resolve_space,
)
from core.store.models import Record
from core.store.projects import delete_project, get_project
from core.store.tasks import create_task, find_attribute, get_task
from core.zero_shot import classify_texts, run_zero_shot
from tests.fixtures_embeddings import (  # noqa: F401
    PROJECT,
    ROWS,
    EmbeddedProject,
    embedded_project_fixture,
    embedding_model_fixture,
    make_project,
)
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401

EMBEDDED = len([r for r in ROWS if r["text"]])


def _space(ep: EmbeddedProject, session: Any) -> Any:
    return resolve_space(session, project_id=ep.project_id)


def _set_text(engine: Engine, key: str, text: str) -> None:
    with session_scope(engine) as session:
        record = session.execute(select(Record).where(Record.key == key)).scalar_one()
        record.data = {**record.data, "text": text}


# --- storage and cache --------------------------------------------------------------------------


def test_embedding_stores_one_normalised_vector_per_record_with_text(embedded_project: EmbeddedProject) -> None:
    result = embedded_project.result
    assert (result.records, result.encoded, result.skipped, result.index) == (EMBEDDED, EMBEDDED, 1, "rebuilt")
    with session_scope(embedded_project.engine) as session:
        _, vectors = load_vectors(session, _space(embedded_project, session))
    assert vectors.shape == (EMBEDDED, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_rerun_on_unchanged_data_encodes_nothing(embedded_project: EmbeddedProject) -> None:
    calls: list[tuple[int, int]] = []
    again = embed_attribute(embedded_project.engine, project=PROJECT, attribute="text",
                            progress=lambda done, total: calls.append((done, total)))
    assert (again.encoded, again.unchanged, again.reused, again.index) == (0, EMBEDDED, 0, "unchanged")
    assert calls == [(0, 0)]


def test_changed_text_is_the_only_one_encoded_and_the_index_follows(embedded_project: EmbeddedProject) -> None:
    engine = embedded_project.engine
    _set_text(engine, "14", "The referee showed the striker a red card in the final.")
    calls: list[tuple[int, int]] = []
    result = embed_attribute(engine, project=PROJECT, attribute="text",
                             progress=lambda done, total: calls.append((done, total)))
    assert (result.encoded, result.unchanged, result.index) == (1, EMBEDDED - 1, "updated")
    assert calls[0] == (0, 1) and calls[-1] == (1, 1)
    with session_scope(engine) as session:
        space = _space(embedded_project, session)
        assert index_status(session, space=space) is IndexStatus.FRESH
        hits = similar_records(session, project_id=embedded_project.project_id, key="14", k=3)
    # The record now talks about football, so football records are its neighbours.
    assert {h.key for h in hits} & {"1", "2", "6"}


def test_a_restart_reads_vectors_from_the_store_without_the_model(
    embedded_project: EmbeddedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(name: str = DEFAULT_MODEL) -> Any:
        raise AssertionError("the model must not be needed for unchanged data")

    monkeypatch.setattr(embeddings_module, "load_model", no_model)
    reset_clients()  # a new process: no cached Chroma client either
    result = embed_attribute(embedded_project.engine, project=PROJECT, attribute="text")
    assert (result.encoded, result.index) == (0, "unchanged")


def test_vectors_are_shared_by_text_across_projects(embedded_project: EmbeddedProject) -> None:
    engine = embedded_project.engine
    make_project(engine, name="copy")
    result = embed_attribute(engine, project="copy", attribute="text")
    assert (result.encoded, result.reused, result.records) == (0, EMBEDDED, EMBEDDED)
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(EmbeddingVector)).scalar_one() == EMBEDDED
        delete_project(session, name="copy")
        # The cache outlives the project; its record mapping does not.
        assert session.execute(select(func.count()).select_from(RecordEmbedding)).scalar_one() == EMBEDDED


def test_embeddings_store_and_index_on_sqlite_and_postgres(
    db_engine: Engine, loupe_home: Any, embedding_model: Any  # noqa: F811
) -> None:
    rows = [{"text": "Bake the bread."}, {"text": "Bake the bread!"}, {"text": "The senate voted."}, {"text": None}]
    project_id = make_project(db_engine, rows=rows)
    first = embed_attribute(db_engine, project=PROJECT, attribute="text")
    again = embed_attribute(db_engine, project=PROJECT, attribute="text")
    assert (first.encoded, first.skipped, again.encoded, again.index) == (3, 1, 0, "unchanged")
    with session_scope(db_engine) as session:
        hits = similar_records(session, project_id=project_id, key="1", k=2)
        assert [h.key for h in hits] == ["2", "3"]
        delete_project(session, name=PROJECT)
        assert prune_vectors(session) == 3
        assert session.execute(select(func.count()).select_from(EmbeddingVector)).scalar_one() == 0


def test_text_hash_is_stable_and_distinguishes_texts() -> None:
    assert text_hash("a b") == text_hash("a b") != text_hash("a  b")
    assert len(text_hash("")) == 32


def test_embedding_a_missing_or_numeric_attribute_says_what_to_use(engine: Engine) -> None:
    make_project(engine, rows=[{"text": "one two three four five", "n": 1}, {"text": "six seven eight nine", "n": 2}])
    with pytest.raises(NotFoundError, match="Attributes: text, n"):
        embed_attribute(engine, project=PROJECT, attribute="body")
    with pytest.raises(ValidationError, match="need a TEXT attribute such as 'text'"):
        embed_attribute(engine, project=PROJECT, attribute="n")


def test_an_unknown_model_is_refused_offline_with_the_alternatives() -> None:
    with pytest.raises(NotFoundError, match="Cannot load the embedding model 'no-such-model-xyz' offline"):
        load_model("no-such-model-xyz")


def test_searching_before_embedding_says_how_to_embed(engine: Engine) -> None:
    project_id = make_project(engine)
    with session_scope(engine) as session, pytest.raises(NotFoundError, match="loupe embed --project 'news'"):
        similar_records(session, project_id=project_id, key="1")


# --- the derived index --------------------------------------------------------------------------


def test_index_is_rebuilt_after_its_collection_is_deleted(embedded_project: EmbeddedProject) -> None:
    with session_scope(embedded_project.engine) as session:
        space = _space(embedded_project, session)
        assert drop_index(space)
        assert index_status(session, space=space) is IndexStatus.MISSING
        # Searching notices the missing index and rebuilds it from the store.
        hits = similar_records(session, project_id=embedded_project.project_id, key="1", k=1)
        assert hits[0].key == "2"
        assert index_status(session, space=space) is IndexStatus.FRESH


def test_index_is_rebuilt_after_its_directory_is_deleted(embedded_project: EmbeddedProject) -> None:
    shutil.rmtree(load_chroma_settings().path)
    with session_scope(embedded_project.engine) as session:
        space = _space(embedded_project, session)
        assert index_status(session, space=space) is IndexStatus.MISSING
        assert ensure_index(session, space=space) is IndexStatus.MISSING
        assert index_status(session, space=space) is IndexStatus.FRESH
        assert similar_records(session, project_id=embedded_project.project_id, key="1", k=1)[0].key == "2"


def test_index_behind_the_store_is_stale_until_rebuilt(embedded_project: EmbeddedProject) -> None:
    engine = embedded_project.engine
    _set_text(engine, "14", "Whisk the cream until stiff.")
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session:
        space = _space(embedded_project, session)
        assert index_status(session, space=space) is IndexStatus.STALE
        assert ensure_index(session, space=space) is IndexStatus.STALE
        assert index_status(session, space=space) is IndexStatus.FRESH


def test_index_progress_counts_the_records_written(engine: Engine, embedding_model: Any) -> None:
    make_project(engine)
    calls: list[tuple[int, int]] = []
    result = embed_attribute(engine, project=PROJECT, attribute="text",
                             index_progress=lambda done, total: calls.append((done, total)))
    assert result.index == "rebuilt" and calls[0] == (0, EMBEDDED) and calls[-1] == (EMBEDDED, EMBEDDED)
    _set_text(engine, "3", "Whisk the cream until stiff.")
    calls.clear()
    assert embed_attribute(engine, project=PROJECT, attribute="text",
                           index_progress=lambda done, total: calls.append((done, total))).index == "updated"
    assert calls == [(0, 1), (1, 1)]  # only the changed record is written


def test_a_search_waits_for_a_rebuild_in_progress_instead_of_starting_another(
    embedded_project: EmbeddedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(embedded_project.engine) as session:
        drop_index(_space(embedded_project, session))
    real = index_module.rebuild_index
    rebuilds: list[str] = []

    def slow_rebuild(session: Any, **kwargs: Any) -> int:
        rebuilds.append(threading.current_thread().name)
        time.sleep(0.5)  # long enough for the other thread to find the index missing too
        return real(session, **kwargs)

    monkeypatch.setattr(index_module, "rebuild_index", slow_rebuild)
    start = threading.Barrier(2)
    found: list[IndexStatus] = []

    def search() -> None:
        start.wait()
        with session_scope(embedded_project.engine) as session:
            found.append(ensure_index(session, space=_space(embedded_project, session)))

    threads = [threading.Thread(target=search, name=f"search-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert found == [IndexStatus.MISSING, IndexStatus.MISSING]
    assert len(rebuilds) == 1
    with session_scope(embedded_project.engine) as session:
        assert index_status(session, space=_space(embedded_project, session)) is IndexStatus.FRESH


# --- deleted projects and reused ids --------------------------------------------------------------

ORIGINAL = [{"text": t} for t in (
    "The striker scored twice in the cup final.", "The striker scored two goals in the cup final!",
    "Bake the bread for forty minutes.", "The senate voted against the tax law.",
)]
# The same texts in another order, so the same counts and revisions: only the records' ids tell them apart.
REORDERED = [ORIGINAL[i] for i in (2, 3, 1, 0)]


def _delete(engine: Engine) -> tuple[int, int, str]:
    """Delete the project; returns the project id, embedding id and collection name it had."""
    with session_scope(engine) as session:
        space = resolve_space(session, project_id=get_project(session, PROJECT).id or 0)
        old = (space.project_id, space.id or 0, collection_name(space))
        delete_project(session, name=PROJECT)
    return old


def _recreate_with_reordered_rows(engine: Engine, old: tuple[int, int, str]) -> int:
    """Import other rows under the deleted project's name: SQLite hands out the same ids again."""
    project_id = make_project(engine, rows=REORDERED)
    result = embed_attribute(engine, project=PROJECT, attribute="text")
    assert (project_id, result.embedding_id) == old[:2]  # the ids were reused
    assert result.index == "rebuilt"
    return project_id


def test_deleting_a_project_drops_its_collections(engine: Engine, embedding_model: Any) -> None:
    make_project(engine, rows=ORIGINAL)
    embed_attribute(engine, project=PROJECT, attribute="text")
    old = _delete(engine)
    assert old[2] not in [c.name for c in get_client().list_collections()]
    project_id = _recreate_with_reordered_rows(engine, old)
    with session_scope(engine) as session:
        assert [h.key for h in similar_records(session, project_id=project_id, key="3", k=1)] == ["4"]
        assert {h.key for h in similar_records(session, project_id=project_id, key="1", k=3)} == {"2", "3", "4"}


def test_a_collection_left_by_a_deleted_space_with_the_same_id_is_never_used(
    engine: Engine, embedding_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(engine, rows=ORIGINAL)
    embed_attribute(engine, project=PROJECT, attribute="text")
    # As if the project had been deleted without its collections (another Loupe, an unreachable server).
    monkeypatch.setattr(index_module, "drop_project_indexes", lambda session, **kwargs: 0)
    old = _delete(engine)
    assert old[2] in [c.name for c in get_client().list_collections()]
    project_id = _recreate_with_reordered_rows(engine, old)
    with session_scope(engine) as session:
        assert index_status(session, space=resolve_space(session, project_id=project_id)) is IndexStatus.FRESH
        # The near-duplicates are records 3 and 4 now (they were 1 and 2 in the deleted project).
        assert [h.key for h in similar_records(session, project_id=project_id, key="3", k=1)] == ["4"]


def test_a_database_from_before_space_uids_gets_them(engine: Engine) -> None:
    project_id = make_project(engine)
    with session_scope(engine) as session:
        attribute = find_attribute(session, project_id, "text")
        get_or_create_space(session, project_id=project_id, attribute_id=attribute.id if attribute else 0, model="m")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE projectembedding DROP COLUMN uid")  # as the table was before
    ensure_space_uids(engine)
    ensure_space_uids(engine)  # nothing left to do the second time
    with engine.connect() as conn:
        uids = conn.exec_driver_sql("SELECT uid FROM projectembedding").scalars().all()
    assert len(uids) == 1 and len(uids[0]) == 32


# --- records new or changed since the last run --------------------------------------------------

KEYED = [{"id": k, "text": t} for k, t in (
    ("a", "The striker scored twice in the cup final."),
    ("b", "Bake the bread for forty minutes."),
    ("c", "The senate voted against the tax law."),
)]


def _import(engine: Engine, rows: list[dict[str, Any]]) -> None:
    import_file(engine, project=PROJECT, data=json.dumps(rows).encode(), name="keyed.json", fmt="json",
                primary_key="id")


def _pending(engine: Engine, project_id: int) -> PendingRecords:
    with session_scope(engine) as session:
        return pending_records(session, resolve_space(session, project_id=project_id))


def test_records_new_or_changed_since_the_last_run_are_counted_and_embedded(
    db_engine: Engine, loupe_home: Any, embedding_model: Any  # noqa: F811
) -> None:
    engine = db_engine
    _import(engine, KEYED)
    embed_attribute(engine, project=PROJECT, attribute="text")
    with session_scope(engine) as session:
        project_id = get_project(session, PROJECT).id or 0
    assert _pending(engine, project_id) == PendingRecords(new=0, changed=0)

    # Re-import: "b" gets a new text, "d" is new, "e" has no text to embed.
    _import(engine, [{"id": "b", "text": "The goalkeeper saved a penalty in the final."},
                     {"id": "d", "text": "The striker scored two goals in the cup final!"},
                     {"id": "e", "text": " \n\t "}])
    pending = _pending(engine, project_id)
    assert (pending.new, pending.changed, pending.total) == (1, 1, 2)
    with session_scope(engine) as session, pytest.raises(ValidationError, match="added after the last run"):
        similar_records(session, project_id=project_id, key="d")

    result = embed_attribute(engine, project=PROJECT, attribute="text")
    assert (result.encoded, result.index) == (2, "updated")
    assert _pending(engine, project_id) == PendingRecords(new=0, changed=0)
    with session_scope(engine) as session:
        # The index holds the new vectors: "b" is about football now, and "d" is found.
        assert [h.key for h in similar_records(session, project_id=project_id, key="a", k=3)][:2] == ["d", "b"]

    # Re-importing the same text counts as a change until the next run finds nothing to encode.
    _import(engine, [KEYED[2]])
    assert _pending(engine, project_id) == PendingRecords(new=0, changed=1)
    assert embed_attribute(engine, project=PROJECT, attribute="text").encoded == 0
    assert _pending(engine, project_id) == PendingRecords(new=0, changed=0)


# --- CLI ----------------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_embed_similar_search_outliers_and_rebuild(
    engine: Engine, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(engine)
    code, out, _ = _run(capsys, "embed", "--project", PROJECT, "--attribute", "text")
    assert code == 0 and f"{EMBEDDED} records ({EMBEDDED} encoded" in out

    code, out, _ = _run(capsys, "similar", "--project", PROJECT, "--record", "1", "-k", "3", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 3 and set(hits[0]) == {"id", "score"}
    assert hits[0]["id"] == "2" and "1" not in [h["id"] for h in hits]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    code, out, _ = _run(capsys, "search", "--project", PROJECT, "--query", "baking a cake in the oven", "--json")
    assert code == 0 and json.loads(out)[0]["id"] in {"3", "5"}

    code, out, _ = _run(capsys, "outliers", "--project", PROJECT, "--json")
    outliers = json.loads(out)
    assert code == 0 and outliers and outliers[0]["id"] == "14"  # quantum physics among sports, food, politics

    code, out, _ = _run(capsys, "index", "rebuild", "--project", PROJECT)
    assert code == 0 and f"text · {DEFAULT_MODEL}: {EMBEDDED} records" in out

    code, _, err = _run(capsys, "similar", "--project", PROJECT, "--record", "16")
    assert code == 1 and err.startswith("error: Record '16' has no embedding")
    code, _, err = _run(capsys, "similar", "--project", PROJECT, "--record", "99")
    assert code == 1 and "No record with id '99'" in err


# --- heuristics ---------------------------------------------------------------------------------

TOPIC_ROWS: list[dict[str, Any]] = [
    *({"text": t, "__topic": "sports"} for t in (
        "The striker scored twice in the cup final.", "The goalkeeper saved a penalty.",
        "The tennis champion won in straight sets.", "The marathon runner broke the world record.")),
    *({"text": t, "__topic": "cooking"} for t in (
        "Whisk the eggs and fold in the flour.", "Bake the bread for forty minutes.",
        "Simmer the tomato sauce with garlic.", "Chop the onions and fry them in butter.")),
    # Mislabeled on purpose: a model that saw its own label would repeat it.
    {"text": "Roast the chicken with lemon and rosemary.", "__topic": "sports"},
    {"text": "The cyclist won the mountain stage of the race.", "__topic": None},
    {"text": "Knead the dough and let it rise overnight.", "__topic": None},
]


def test_active_learner_statistics_exclude_its_training_records(engine: Engine, embedding_model: Any) -> None:
    project_id = make_project(engine, rows=TOPIC_ROWS)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session:
        result = run_active_learner(session, project_id=project_id, task="topic", min_confidence=0.0)
        space = resolve_space(session, project_id=project_id)
        ids, X = load_vectors(session, space)
    assert result.training_size == 9 and result.cv_folds == 4
    by_record = result.predictions.set_index("record_id")
    mislabeled = 9
    y = [row["__topic"] for row in TOPIC_ROWS[:9]]
    X_train = X[[int(np.flatnonzero(ids == r)[0]) for r in range(1, 10)]]
    # In-sample, the classifier repeats every label it was trained on, the wrong one too ...
    in_sample = ActiveLearner().fit(X_train, y)
    assert in_sample.estimator_.score(X_train, y) == 1.0
    assert in_sample.estimator_.predict(X_train[[mislabeled - 1]])[0] == "sports"
    # ... but the learner's own label for a training record comes from a model that did not see it,
    assert by_record.loc[mislabeled, "label"] == "cooking" and by_record.loc[mislabeled, "trained_on"]
    # and its statistics are measured on those out-of-fold labels only.
    trained = by_record[by_record["trained_on"]]
    assert list(trained.index) == list(range(1, 10))
    assert result.cv_accuracy == pytest.approx(np.mean(trained["label"].to_numpy() == np.array(y)))
    assert result.cv_accuracy <= 8 / 9
    stats = result.stats.set_index("label")
    assert int(stats["coverage"].sum()) == 9
    assert int((stats["true_positives"] + stats["false_positives"]).sum()) == 9
    assert stats.loc["cooking", "false_positives"] >= 1  # the mislabeled record counts against it
    assert stats.loc["sports", "training"] == 5 and stats.loc["cooking", "training"] == 4
    # Records it did not train on get the full model's prediction.
    assert by_record.loc[10, "label"] == "sports" and not by_record.loc[10, "trained_on"]
    assert by_record.loc[11, "label"] == "cooking"


def test_active_learner_needs_two_examples_of_two_labels(engine: Engine, embedding_model: Any) -> None:
    project_id = make_project(engine, rows=[{"text": "The striker scored.", "__topic": "sports"},
                                            {"text": "Bake the bread.", "__topic": "cooking"},
                                            {"text": "Fry the onions.", "__topic": "cooking"}])
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session, pytest.raises(ValidationError, match="'sports' has only one"):
        run_active_learner(session, project_id=project_id, task="topic")


def test_zero_shot_labels_obvious_examples_without_manual_labels(engine: Engine, embedding_model: Any) -> None:
    rows = [{"text": t} for t in (
        "The striker scored twice in the cup final.",
        "Whisk the eggs, then fold in the flour and sugar.",
        "Parliament passed the new budget bill after a long debate.",
    )]
    project_id = make_project(engine, rows=rows)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session:
        from core.store.projects import get_project

        create_task(session, project=get_project(session, PROJECT), name="topic", kind="classification",
                    labels=["sports", "cooking", "politics"])
        result = run_zero_shot(session, project_id=project_id, task="topic")
        assert get_task(session, project_id, "topic").id
    labels = dict(zip(result.predictions["record_id"], result.predictions["label"], strict=True))
    assert labels == {1: "sports", 2: "cooking", 3: "politics"}
    assert result.accuracy is None and result.labeled_records == 0
    assert (result.predictions["confidence"] >= 0.5).all()


def test_zero_shot_abstains_below_its_threshold_and_uses_descriptions() -> None:
    labels = ["spam", "ham"]
    texts = ["Subscribe to my channel and win a free iPhone, click the link!!!", "hello"]
    plain = classify_texts(texts, labels, min_confidence=0.99)
    assert plain[1][0] is None
    described = classify_texts(
        texts, labels, descriptions={"spam": "advertising, links and requests to subscribe",
                                     "ham": "a genuine comment about the video"},
    )
    assert described[0][0] == "spam"
    with pytest.raises(ValidationError, match="unknown label"):
        classify_texts(texts, labels, descriptions={"eggs": "x"})
