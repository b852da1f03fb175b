"""Importers on the tiny files in tests/data, against SQLite and PostgreSQL.

Each supported format, refinery and Label Studio labels, type inference,
running ids, primary-key re-import, and every bad input: refused with a
:class:`DataImportError` naming file, line and problem, with the database
exactly as before.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.errors import DataImportError
from core.importers import import_file, read_file
from core.importers.infer import infer_type
from core.importers.labels import tags_to_spans
from core.store import session_scope
from core.store.models import (
    Annotator,
    Attribute,
    AttributeType,
    Label,
    LabelAssociation,
    LabelingTask,
    Project,
    Record,
    RecordTokens,
)
from core.store.projects import create_project, get_project
from core.store.tasks import create_task
from core.tokenize import tokenize_texts
from tests.conftest import DATA
from tests.fixtures_pg import (  # noqa: F401
    db_engine_fixture,
    db_url_fixture,
    dump,
    pg_cluster_fixture,
    pg_url_fixture,
)

TYPED_FORMATS = ["records.csv", "records.tsv", "records.json", "records.jsonl", "records.xlsx"]
EXPECTED_TYPES = {
    "id": AttributeType.INTEGER,
    "text": AttributeType.TEXT,
    "category": AttributeType.CATEGORY,
    "score": AttributeType.FLOAT,
    "active": AttributeType.BOOLEAN,
}
EXPECTED_ROWS = [
    {"id": 1, "text": "The battery lasts all day and charges fast", "category": "electronics", "score": 4.5,
     "active": True},
    {"id": 2, "text": "Shipping took three weeks, which is far too long", "category": "logistics", "score": 2.0,
     "active": False},
    {"id": 3, "text": 'Crème brûlée arrived frozen, packed in "dry ice"', "category": "food", "score": None,
     "active": True},
    {"id": 4, "text": "Great value for money, would buy again", "category": "electronics", "score": 5.0,
     "active": False},
]


# --- helpers -----------------------------------------------------------------------------------------------


def records(engine: Engine, project: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(running id, key, data) of every record of the project, by running id."""
    with session_scope(engine) as session:
        pid = get_project(session, project).id
        stmt = select(Record.running_id, Record.key, Record.data).where(Record.project_id == pid)
        return [tuple(r) for r in session.execute(stmt.order_by(Record.running_id)).all()]  # type: ignore[misc]


def attribute_types(engine: Engine, project: str) -> dict[str, str]:
    with session_scope(engine) as session:
        pid = get_project(session, project).id
        stmt = select(Attribute.name, Attribute.data_type).where(Attribute.project_id == pid)
        return dict(session.execute(stmt.order_by(Attribute.position)).all())  # type: ignore[arg-type]


def tasks(engine: Engine, project: str) -> dict[str, tuple[str, str | None, list[str]]]:
    """Task name → (kind, target attribute or None, label names in order)."""
    with session_scope(engine) as session:
        pid = get_project(session, project).id
        out = {}
        for task in session.execute(select(LabelingTask).where(LabelingTask.project_id == pid)).scalars():
            target = session.get(Attribute, task.attribute_id).name if task.attribute_id else None
            names = session.execute(
                select(Label.name).where(Label.task_id == task.id).order_by(Label.position)
            ).scalars().all()
            out[task.name] = (task.kind, target, list(names))
        return out


def associations(engine: Engine, project: str) -> list[dict[str, Any]]:
    """Every label association of the project, readable: record key, task and label names, annotator name."""
    with session_scope(engine) as session:
        pid = get_project(session, project).id
        stmt = (
            select(LabelAssociation, Record.key, LabelingTask.name, Label.name, Annotator.name)
            .join(Record, Record.id == LabelAssociation.record_id)
            .join(LabelingTask, LabelingTask.id == LabelAssociation.task_id)
            .join(Label, Label.id == LabelAssociation.label_id)
            .outerjoin(Annotator, Annotator.id == LabelAssociation.annotator_id)
            .where(LabelAssociation.project_id == pid)
        )
        out = []
        for assoc, key, task, label, annotator in session.execute(stmt).all():
            out.append({
                "key": key, "task": task, "label": label, "source": assoc.source_type,
                "source_name": assoc.source_name, "annotator": annotator, "confidence": assoc.confidence,
                "tokens": (assoc.token_start, assoc.token_end), "chars": (assoc.char_start, assoc.char_end),
                "gold": assoc.is_gold, "seconds": assoc.seconds_spent,
            })
        return sorted(out, key=lambda a: (int(a["key"]), a["task"], a["source"], str(a["annotator"]),
                                          a["tokens"][0] or 0, a["label"]))


def pick(assocs: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [a for a in assocs if all(a[k] == v for k, v in where.items())]


# --- formats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", TYPED_FORMATS)
def test_each_format_imports_attributes_types_and_values(db_engine: Engine, file: str) -> None:
    result = import_file(db_engine, project="shop", path=DATA / file)

    assert (result.created, result.updated) == (4, 0)
    assert result.attributes_created == list(EXPECTED_TYPES)
    assert attribute_types(db_engine, "shop") == {k: v.value for k, v in EXPECTED_TYPES.items()}
    rows = records(db_engine, "shop")
    assert [data for _, _, data in rows] == EXPECTED_ROWS
    # No primary key was chosen: records are addressed by their running id.
    assert [(rid, key) for rid, key, _ in rows] == [(1, "1"), (2, "2"), (3, "3"), (4, "4")]


def test_format_can_be_named_when_the_extension_is_unknown(db_engine: Engine, tmp_path) -> None:
    path = tmp_path / "export.data"
    path.write_bytes((DATA / "records.jsonl").read_bytes())
    result = import_file(db_engine, project="shop", path=path, fmt="jsonl")
    assert result.format == "jsonl"
    assert [data for _, _, data in records(db_engine, "shop")] == EXPECTED_ROWS


def test_plain_text_is_one_record_per_non_blank_line(db_engine: Engine) -> None:
    result = import_file(db_engine, project="lines", path=DATA / "lines.txt")

    assert result.created == 3
    assert attribute_types(db_engine, "lines") == {"text": "TEXT"}
    assert [data["text"] for _, _, data in records(db_engine, "lines")] == [
        "The battery lasts all day and charges fast",
        "Shipping took three weeks, which is far too long",
        "Great value for money, would buy again",
    ]


def test_bytes_with_a_name_import_like_a_file(db_engine: Engine) -> None:
    data = (DATA / "records.csv").read_bytes()
    result = import_file(db_engine, project="upload", data=data, name="records.csv")
    assert result.file == "records.csv"
    assert result.created == 4


# --- type inference (refinery's rule) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a short tag", "two words"], AttributeType.CATEGORY),
        (["exactly four words here", "also four words here"], AttributeType.CATEGORY),
        (["five words are in this", "and five words right here"], AttributeType.TEXT),
        (["one two three four five six", "x"], AttributeType.CATEGORY),  # 3.5 words on average
        (["1", "-2", "+30"], AttributeType.INTEGER),
        ([1, 2, None], AttributeType.INTEGER),
        (["1.5", "2", "1e3"], AttributeType.FLOAT),
        ([1, 2.5], AttributeType.FLOAT),
        (["true", "False", "TRUE"], AttributeType.BOOLEAN),
        ([True, False], AttributeType.BOOLEAN),
        (["007", "008"], AttributeType.CATEGORY),  # leading zeros: an identifier, not a number
        (["nan", "1"], AttributeType.CATEGORY),
        ([None, ""], AttributeType.CATEGORY),
        ([{"a": 1}, {"a": 2}], AttributeType.CATEGORY),
    ],
)
def test_type_inference(values: list[Any], expected: AttributeType) -> None:
    assert infer_type(values) is expected


def test_running_ids_continue_across_imports_without_a_key(db_engine: Engine) -> None:
    import_file(db_engine, project="shop", path=DATA / "records.csv")
    second = import_file(db_engine, project="shop", path=DATA / "records.csv")

    assert (second.created, second.updated, second.attributes_created) == (4, 0, [])
    rows = records(db_engine, "shop")
    assert [(rid, key) for rid, key, _ in rows] == [(i, str(i)) for i in range(1, 9)]
    assert rows[4][2] == rows[0][2]


# --- primary key re-import -------------------------------------------------------------------------------------


def test_primary_key_reimport_updates_instead_of_duplicating(db_engine: Engine) -> None:
    first = import_file(db_engine, project="shop", path=DATA / "pk_first.csv", primary_key="id")
    assert (first.created, first.updated) == (3, 0)
    # The project is keyed on id now: the second import matches records without naming the key again.
    second = import_file(db_engine, project="shop", path=DATA / "pk_second.csv")

    assert (second.created, second.updated) == (1, 1)
    rows = records(db_engine, "shop")
    assert [(rid, key) for rid, key, _ in rows] == [(1, "10"), (2, "20"), (3, "30"), (4, "40")]
    assert rows[1][2] == {"id": 20, "text": "Shipping took two days which is fine by me"}
    assert rows[0][2]["text"] == "The battery lasts all day and charges fast"  # untouched
    sentiment = [(a["key"], a["label"]) for a in associations(db_engine, "shop")]
    # The file's labels replace the old ones of the records it carries: 20 was negative, is positive now.
    assert sentiment == [("10", "positive"), ("20", "positive"), ("30", "positive"), ("40", "negative")]
    with session_scope(db_engine) as session:
        pid = get_project(session, "shop").id
        keyed = session.execute(
            select(Attribute.name).where(Attribute.project_id == pid, Attribute.is_primary_key)
        ).scalars().all()
    assert keyed == ["id"]


def test_reimporting_the_same_file_with_a_key_is_idempotent(db_engine: Engine) -> None:
    import_file(db_engine, project="shop", path=DATA / "pk_first.csv", primary_key="id")
    before = associations(db_engine, "shop"), records(db_engine, "shop")
    again = import_file(db_engine, project="shop", path=DATA / "pk_first.csv", primary_key="id")
    assert (again.created, again.updated) == (0, 3)
    assert (associations(db_engine, "shop"), records(db_engine, "shop")) == before


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SPAM_V1 = "id,text,__s\n1,Check out my channel now,yes\n2,Nice song from the band,\n3,I love this video,no\n"


def _workflow(engine: Engine, project: str) -> dict[str, Any]:
    """Answer versions and stored statuses of the project, by record key and annotator name."""
    from core.store.workflow import ManualAnswer, RecordStatus

    with session_scope(engine) as session:
        pid = get_project(session, project).id
        versions = session.execute(
            select(Record.key, Annotator.name, ManualAnswer.version)
            .join(Record, Record.id == ManualAnswer.record_id)
            .join(Annotator, Annotator.id == ManualAnswer.annotator_id)
            .where(ManualAnswer.project_id == pid)
        ).all()
        statuses = session.execute(
            select(Record.key, RecordStatus.status).join(Record, Record.id == RecordStatus.record_id)
            .where(RecordStatus.project_id == pid)
        ).all()
    return {"versions": sorted(tuple(v) for v in versions), "statuses": dict(statuses)}  # type: ignore[misc]


def test_reimport_keeps_labels_annotators_made_in_loupe(db_engine: Engine, tmp_path) -> None:
    from core.labeling import label

    path = _write(tmp_path, "spam.csv", SPAM_V1)
    import_file(db_engine, project="spam", path=path, primary_key="id")
    # Record 2 has an empty label cell; two people label it (and record 1) in Loupe.
    label(db_engine, project="spam", task="s", record="2", labels=["yes"], annotator="alice")
    label(db_engine, project="spam", task="s", record="2", labels=["no"], annotator="bob")
    label(db_engine, project="spam", task="s", record="1", labels=["no"], annotator="alice")
    before, workflow = associations(db_engine, "spam"), _workflow(db_engine, "spam")
    assert len(before) == 5

    again = import_file(db_engine, project="spam", path=path, primary_key="id")

    assert (again.created, again.updated) == (0, 3)
    assert associations(db_engine, "spam") == before
    # Nothing changed, so no answer got a new version and no status moved.
    assert _workflow(db_engine, "spam") == workflow


def test_reimport_replaces_only_the_files_own_labels_and_keeps_the_workflow_true(
    db_engine: Engine, tmp_path
) -> None:
    from core.labeling import get_or_create_annotator, label
    from core.review import review_answer, review_queue
    from core.store.workflow import ReviewDecision, Status, get_status

    import_file(db_engine, project="spam", path=_write(tmp_path, "v1.csv", SPAM_V1), primary_key="id")
    label(db_engine, project="spam", task="s", record="1", labels=["yes"], annotator="alice")
    label(db_engine, project="spam", task="s", record="3", labels=["no"], annotator="bob")
    with session_scope(db_engine) as session:
        pid = get_project(session, "spam").id
        task_id = session.execute(select(LabelingTask.id).where(LabelingTask.project_id == pid)).scalar_one()
        ids = dict(session.execute(select(Record.key, Record.id).where(Record.project_id == pid)).all())
        rita = get_or_create_annotator(session, "rita").id
        for key, aid in review_queue(session, task_id=task_id):
            review_answer(session, task_id=task_id, record_id=key, annotator_id=aid, reviewer_id=rita,
                          decision=ReviewDecision.ACCEPTED)
        assert review_queue(session, task_id=task_id) == []
        assert get_status(session, record_id=ids["1"], task_id=task_id) is Status.DONE

    # The file changes record 1's imported label, clears record 3's, and leaves record 2 empty.
    v2 = "id,text,__s\n1,Check out my channel now,no\n2,Nice song from the band,\n3,I love this video,\n"
    import_file(db_engine, project="spam", path=_write(tmp_path, "v2.csv", v2), primary_key="id")

    manual = [(a["key"], a["label"], a["annotator"]) for a in associations(db_engine, "spam")]
    assert manual == [("1", "yes", "alice"), ("1", "no", "imported"), ("3", "no", "bob")]
    with session_scope(db_engine) as session:
        # The changed imported answer waits for review again, and its record left "done"; bob's accepted
        # answer on record 3 stays accepted, and record 3 keeps its status (it still has bob's label).
        queue = review_queue(session, task_id=task_id)
        imported = session.execute(select(Annotator.id).where(Annotator.name == "imported")).scalar_one()
        assert queue == [(ids["1"], imported)]
        assert get_status(session, record_id=ids["1"], task_id=task_id) is Status.LABELED
        assert get_status(session, record_id=ids["3"], task_id=task_id) is Status.LABELED

    # Once rita rejected both answers of record 1, the file labels it again (labeled), then clears it
    # (unlabeled): a stored status follows the manual labels a re-import leaves.
    label_only = "id,text,__s\n1,Check out my channel now,\n"
    with session_scope(db_engine) as session:
        alice = session.execute(select(Annotator.id).where(Annotator.name == "alice")).scalar_one()
        for who in (imported, alice):
            review_answer(session, task_id=task_id, record_id=ids["1"], annotator_id=who, reviewer_id=rita,
                          decision=ReviewDecision.REJECTED)
        assert get_status(session, record_id=ids["1"], task_id=task_id) is Status.REWORK
    import_file(db_engine, project="spam", path=_write(tmp_path, "v3.csv", label_only))
    with session_scope(db_engine) as session:
        assert get_status(session, record_id=ids["1"], task_id=task_id) is Status.REWORK  # nothing to change

    relabel = "id,text,__s\n1,Check out my channel now,yes\n"
    import_file(db_engine, project="spam", path=_write(tmp_path, "v4.csv", relabel))
    with session_scope(db_engine) as session:
        assert get_status(session, record_id=ids["1"], task_id=task_id) is Status.LABELED
    import_file(db_engine, project="spam", path=_write(tmp_path, "v5.csv", label_only))
    with session_scope(db_engine) as session:
        assert get_status(session, record_id=ids["1"], task_id=task_id) is Status.UNLABELED


def test_a_refused_reimport_keeps_loupe_labels_and_workflow(db_engine: Engine, tmp_path) -> None:
    from core.labeling import label

    import_file(db_engine, project="spam", path=_write(tmp_path, "v1.csv", SPAM_V1), primary_key="id")
    label(db_engine, project="spam", task="s", record="2", labels=["yes"], annotator="alice")
    before = dump(db_engine)
    bad = "id,text,__s\n1,Check out my channel now,no\n2,Nice song from the band,maybe\n"
    with pytest.raises(DataImportError, match="unknown label 'maybe'"):
        import_file(db_engine, project="spam", path=_write(tmp_path, "bad.csv", bad))
    assert dump(db_engine) == before


# --- refinery ----------------------------------------------------------------------------------------------------


def test_refinery_export_creates_tasks_labels_and_sources(db_engine: Engine) -> None:
    result = import_file(db_engine, project="news", path=DATA / "refinery_export.json")

    assert result.format == "refinery"
    assert result.tasks_created == ["clickbait", "tone", "entities"]
    assert result.labels == {"MANUAL": 12, "WEAK_SUPERVISION": 5, "HEURISTIC": 2}
    assert attribute_types(db_engine, "news") == {"running_id": "INTEGER", "headline": "TEXT", "source": "CATEGORY"}
    assert tasks(db_engine, "news") == {
        "clickbait": ("classification", None, ["no", "yes"]),
        "tone": ("classification", "headline", ["neutral", "sensational"]),
        "entities": ("extraction", "headline", ["ORG", "LOC", "MONEY", "PER"]),
    }
    assocs = associations(db_engine, "news")
    manual = pick(assocs, task="clickbait", source="MANUAL")
    assert [(a["key"], a["label"], a["annotator"]) for a in manual] == [
        ("1", "no", "imported"), ("2", "yes", "imported"), ("4", "no", "imported")
    ]
    # WEAK_SUPERVISION confidence arrives as a number or as a string with 4 decimals.
    ws = pick(assocs, task="clickbait", source="WEAK_SUPERVISION")
    assert [(a["key"], a["label"], a["confidence"]) for a in ws] == [
        ("1", "no", 0.9134), ("2", "yes", 0.4685), ("3", "yes", 0.62), ("4", "no", 0.7)
    ]
    heuristic = pick(assocs, source="HEURISTIC")
    assert [(a["key"], a["label"], a["source_name"]) for a in heuristic] == [
        ("2", "yes", "shouty_lf"), ("3", "yes", "shouty_lf")
    ]
    tone = pick(assocs, task="tone")
    assert [(a["key"], a["label"]) for a in tone] == [("1", "neutral"), ("2", "sensational"), ("4", "neutral")]


def test_refinery_extraction_tags_become_token_and_char_spans(db_engine: Engine) -> None:
    import_file(db_engine, project="news", path=DATA / "refinery_export.json")

    spans = pick(associations(db_engine, "news"), task="entities", source="MANUAL")
    # BIO (row 1), plain tags with OUTSIDE (row 2), O only (row 3: no span), BIO (row 4).
    assert [(a["key"], a["label"], a["tokens"], a["chars"]) for a in spans] == [
        ("1", "ORG", (0, 1), (0, 5)),
        ("1", "LOC", (2, 3), (11, 15)),
        ("1", "MONEY", (5, 8), (28, 38)),
        ("2", "PER", (5, 7), (26, 34)),
        ("2", "LOC", (9, 10), (43, 49)),
        ("4", "LOC", (3, 4), (17, 23)),
    ]
    rows = {key: data["headline"] for _, key, data in records(db_engine, "news")}
    assert [rows[a["key"]][slice(*a["chars"])] for a in spans] == [
        "Apple", "U.K.", "$1 billion", "Tim Cook", "Berlin", "Berlin"
    ]
    ws = pick(associations(db_engine, "news"), task="entities", source="WEAK_SUPERVISION")
    # Per-token confidences are averaged over the span.
    assert [(a["key"], a["label"], a["tokens"], a["confidence"]) for a in ws] == [("1", "ORG", (0, 1), 0.8)]
    # The tokens of the labeled attribute are stored as spaCy character offsets.
    with session_scope(db_engine) as session:
        stored = dict(
            session.execute(
                select(Record.key, RecordTokens.offsets).join(Record, Record.id == RecordTokens.record_id)
            ).all()
        )
    texts = [rows[k] for k in sorted(rows)]
    assert [stored[k] for k in sorted(rows)] == tokenize_texts(texts)


def test_refinery_upload_columns_create_whole_record_and_attribute_tasks(db_engine: Engine) -> None:
    result = import_file(db_engine, project="upload", path=DATA / "refinery_upload.csv")

    assert result.attributes_created == ["text", "channel"]
    assert tasks(db_engine, "upload") == {
        "sentiment": ("classification", None, ["positive", "negative"]),
        "topic": ("classification", "text", ["hardware", "delivery"]),
    }
    assert [(a["key"], a["task"], a["label"]) for a in associations(db_engine, "upload")] == [
        ("1", "sentiment", "positive"), ("1", "topic", "hardware"),
        ("2", "sentiment", "negative"), ("2", "topic", "delivery"),
        ("3", "sentiment", "positive"),
    ]


def test_spans_on_short_texts_make_the_attribute_text(db_engine: Engine, tmp_path) -> None:
    # Two-word texts would be CATEGORY by refinery's rule; tags on them make them TEXT.
    path = tmp_path / "short.json"
    path.write_text('[{"name": "Tim Cook", "name__ner__MANUAL": ["B-PER", "I-PER"]},'
                    ' {"name": "Berlin", "name__ner__MANUAL": ["B-LOC"]}]', encoding="utf-8")
    import_file(db_engine, project="short", path=path)
    assert attribute_types(db_engine, "short") == {"name": "TEXT"}
    assert tasks(db_engine, "short") == {"ner": ("extraction", "name", ["PER", "LOC"])}


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["PER", "PER", "OUTSIDE", "LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["I-LOC", "I-LOC", None, "O"], [("LOC", 0, 2)]),
        (["O", "OUTSIDE", ""], []),
    ],
)
def test_tags_to_spans_accepts_bio_plain_and_outside(tags: list[Any], spans: list[tuple[str, int, int]]) -> None:
    assert tags_to_spans(tags) == spans


# --- Label Studio --------------------------------------------------------------------------------------------------


def test_labelstudio_export_gives_annotators_gold_predictions_and_spans(db_engine: Engine) -> None:
    result = import_file(db_engine, project="reviews", path=DATA / "labelstudio_export.json")

    assert result.format == "labelstudio"
    assert result.labels == {"MANUAL": 5, "MODEL": 3}
    # The records are the tasks' data objects; Label Studio's own keys are not attributes.
    assert attribute_types(db_engine, "reviews") == {"text": "TEXT", "channel": "CATEGORY"}
    assert tasks(db_engine, "reviews") == {
        "sentiment": ("classification", None, ["Negative", "Positive"]),
        "ner": ("extraction", "text", ["LOC"]),
    }
    assocs = associations(db_engine, "reviews")
    manual = pick(assocs, task="sentiment", source="MANUAL")
    # Two annotators on record 1 (the second marked ground truth); the cancelled annotation on 2 is skipped.
    assert [(a["key"], a["label"], a["annotator"], a["gold"], a["seconds"]) for a in manual] == [
        ("1", "Positive", "bo@example.com", True, 8.0),
        ("1", "Negative", "user 1", False, 12.5),
        ("2", "Positive", "user 1", False, 20.0),
    ]
    model = pick(assocs, task="sentiment", source="MODEL")
    assert [(a["key"], a["label"], a["source_name"], a["confidence"], a["annotator"]) for a in model] == [
        ("1", "Negative", "sentiment-v1", 0.87, None),
        ("3", "Negative", "sentiment-v1", 0.66, None),
    ]
    spans = pick(assocs, task="ner")
    # Character offsets are mapped to spaCy token ranges; a result's own score beats the prediction's.
    assert [(a["key"], a["source"], a["tokens"], a["chars"], a["confidence"]) for a in spans] == [
        ("1", "MANUAL", (11, 12), (52, 57), None),
        ("2", "MANUAL", (3, 4), (20, 26), None),
        ("2", "MODEL", (3, 4), (20, 26), 0.93),
    ]
    rows = {key: data["text"] for _, key, data in records(db_engine, "reviews")}
    assert [rows[a["key"]][slice(*a["chars"])] for a in spans] == ["Paris", "Berlin", "Berlin"]


def test_labelstudio_file_is_recognised_without_naming_the_format() -> None:
    fmt, table, parsed = read_file((DATA / "labelstudio_export.json").read_bytes(), name="export.json")
    assert fmt == "labelstudio"
    assert table.columns == ["text", "channel"]
    assert table.lines == [2, 111, 206]
    assert set(parsed.tasks) == {"sentiment", "ner"}


# --- bad input: refused, named, and nothing written ----------------------------------------------------------------

# (file, primary key, line or None, words the message must contain)
BAD_INPUTS = {
    "malformed-json": ("bad_malformed.json", None, 4, "malformed JSON"),
    "malformed-jsonl": ("bad_malformed.jsonl", None, 3, "malformed JSON"),
    "column-count": ("bad_columns.csv", None, 3, "expected 3 columns as in the header, found 4"),
    "unknown-label": ("bad_unknown_label.csv", None, 4, "unknown label 'meh' for task 'sentiment'"),
    "duplicate-key": ("bad_duplicate_key.csv", "id", 4, "duplicate primary key id='1' (first on line 2)"),
    "empty-file": ("empty.csv", None, None, "the file is empty"),
    "header-only": ("header_only.csv", None, None, "no records"),
    "encoding": ("bad_encoding.csv", None, 3, "not valid UTF-8"),
    "extension": ("bad_extension.xml", None, None, "unsupported file extension '.xml'"),
    "tag-count": ("bad_tag_count.json", None, 15, "has 3 tags but 'headline' has 4 spaCy tokens"),
    "span-text": ("bad_span_text.json", None, 2, "should read 'Paris' but the record has 'Lyon!'"),
}


def _existing_project(engine: Engine) -> None:
    """A project with data: keyed records, a task with labels, manual labels, stored tokens."""
    import_file(engine, project="shop", path=DATA / "pk_first.csv", primary_key="id")
    import_file(engine, project="news", path=DATA / "refinery_export.json")


def _expect_refused(engine: Engine, project: str, case: str) -> DataImportError:
    file, primary_key, line, problem = BAD_INPUTS[case]
    before = dump(engine)
    with pytest.raises(DataImportError) as caught:
        import_file(engine, project=project, path=DATA / file, primary_key=primary_key)
    error = caught.value
    message = str(error)
    where = f"{file}, line {line}: " if line is not None else f"{file}: "
    assert message.startswith(where), message
    assert problem in message
    assert (error.file, error.line) == (file, line)
    assert dump(engine) == before
    return error


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_into_an_existing_project_changes_nothing(db_engine: Engine, case: str) -> None:
    _existing_project(db_engine)
    project = "news" if case == "tag-count" else "shop"
    _expect_refused(db_engine, project, case)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_into_a_new_project_creates_nothing(db_engine: Engine, case: str) -> None:
    if case == "unknown-label":
        # A label is only unknown to a task that exists: define the task, no records.
        with session_scope(db_engine) as session:
            project = create_project(session, name="fresh")
            create_task(session, project=project, name="sentiment", kind="classification",
                        labels=["positive", "negative"])
    _expect_refused(db_engine, "fresh", case)
    with session_scope(db_engine) as session:
        names = session.execute(select(Project.name)).scalars().all()
    assert names == (["fresh"] if case == "unknown-label" else [])


def test_a_value_that_does_not_fit_the_existing_type_is_refused(db_engine: Engine, tmp_path) -> None:
    import_file(db_engine, project="shop", path=DATA / "records.csv")
    path = tmp_path / "more.csv"
    path.write_text("id,text\n5,Fine\nsix,Also fine\n", encoding="utf-8")
    before = dump(db_engine)
    with pytest.raises(DataImportError, match=r"^more\.csv, line 3: column 'id' holds INTEGER values.*'six'"):
        import_file(db_engine, project="shop", path=path)
    assert dump(db_engine) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "one object"}', r"expected a JSON array of objects .* holds one object"),
        ("[]", r"the JSON array is empty"),
        ('[{"text": "a"}, 5]', r"expected an object \(\{\.\.\.\}\) per record, found int"),
        ('[{"text": "a"}] trailing', r"unexpected content after the JSON array"),
    ],
)
def test_json_shape_errors_name_the_line(db_engine: Engine, tmp_path, content: str, message: str) -> None:
    path = tmp_path / "shape.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataImportError, match=rf"^shape\.json(, line \d+)?: .*{message}"):
        import_file(db_engine, project="p", path=path)
    assert all(rows == [] for rows in dump(db_engine).values())


def test_primary_key_mistakes_are_refused(db_engine: Engine) -> None:
    with pytest.raises(DataImportError, match=r"primary key 'nope' is not a column; columns: id, text"):
        import_file(db_engine, project="shop", path=DATA / "pk_first.csv", primary_key="nope")
    import_file(db_engine, project="shop", path=DATA / "pk_first.csv", primary_key="id")
    with pytest.raises(DataImportError, match=r"keyed on 'id', which this file lacks"):
        import_file(db_engine, project="shop", path=DATA / "lines.txt")
    import_file(db_engine, project="plain", path=DATA / "records.csv")
    with pytest.raises(DataImportError, match=r"has records without a primary key"):
        import_file(db_engine, project="plain", path=DATA / "records.csv", primary_key="id")


def test_a_missing_file_is_an_import_error(db_engine: Engine, tmp_path) -> None:
    with pytest.raises(DataImportError, match=r"cannot read the file"):
        import_file(db_engine, project="p", path=tmp_path / "missing.csv")


def test_spans_on_an_existing_category_attribute_are_refused(db_engine: Engine, tmp_path) -> None:
    import_file(db_engine, project="shop", path=DATA / "records.csv")
    path = tmp_path / "tags.json"
    path.write_text('[{"id": 9, "category": "toys", "category__kind__MANUAL": ["B-TYPE"]}]', encoding="utf-8")
    before = dump(db_engine)
    with pytest.raises(DataImportError) as caught:
        import_file(db_engine, project="shop", path=path)
    assert str(caught.value) == (
        "tags.json: cannot create task 'kind': Extraction tasks need a TEXT attribute; 'category' is CATEGORY."
    )
    assert dump(db_engine) == before


def test_xlsx_cells_holding_json_lists_become_multilabel_answers(db_engine: Engine, tmp_path) -> None:
    import pandas as pd

    path = tmp_path / "topics.xlsx"
    topics = ['["finance", "news"]', '["sport"]', None]
    frame = pd.DataFrame({"text": ["rates and loans", "match report", "no topic"], "__topics": topics})
    frame.to_excel(path, index=False)
    import_file(db_engine, project="p", path=path)
    with session_scope(db_engine) as session:
        task = session.execute(select(LabelingTask)).scalars().one()
        labels = sorted(session.execute(select(Label.name).where(Label.task_id == task.id)).scalars())
        count = len(session.execute(select(LabelAssociation)).scalars().all())
    assert task.kind == "multilabel"
    assert labels == ["finance", "news", "sport"]
    assert count == 3
