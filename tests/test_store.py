"""The store on SQLite and PostgreSQL: projects, tasks and labels, record pages, tokens, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.errors import ConflictError, NotFoundError, ValidationError
from core.importers import import_file
from core.settings import load_settings
from core.store import get_engine, make_engine, session_scope
from core.store.models import (
    Attribute,
    Label,
    LabelAssociation,
    LabelingTask,
    Project,
    Record,
    RecordTokens,
)
from core.store.projects import (
    bump_revision,
    create_project,
    delete_project,
    find_project,
    get_project,
    list_projects,
)
from core.store.records import count_records, get_record, page_records
from core.store.summary import attributes_frame, label_counts, labeled_records, tasks_frame
from core.store.tasks import HOTKEYS, PALETTE, add_labels, create_task, get_task, list_labels, parse_kind
from core.tokenize import char_span_to_tokens, ensure_tokens, get_nlp, load_tokens, store_tokens, tokenize_texts
from tests.conftest import DATA
from tests.fixtures_pg import (  # noqa: F401
    db_engine_fixture,
    db_url_fixture,
    dump,
    pg_cluster_fixture,
    pg_url_fixture,
)

# --- projects ------------------------------------------------------------------------------------------------------


def test_create_get_and_list_projects(db_engine: Engine) -> None:
    with session_scope(db_engine) as session:
        create_project(session, name="  beta ", description="second")
        create_project(session, name="alpha")
    import_file(db_engine, project="alpha", path=DATA / "refinery_export.json")

    with session_scope(db_engine) as session:
        assert get_project(session, "beta").description == "second"  # name stripped
        assert find_project(session, "gamma") is None
        summaries = [s.as_dict() for s in list_projects(session)]
    assert [(s["name"], s["records"], s["tasks"], s["manual_labels"]) for s in summaries] == [
        ("alpha", 4, 3, 12),
        ("beta", 0, 0, 0),
    ]
    assert set(summaries[0]) == {"id", "name", "description", "records", "tasks", "manual_labels", "revision"}


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", ValidationError, "needs a name"),
        ("   ", ValidationError, "needs a name"),
        ("x" * 101, ValidationError, "at most 100 characters; got 101"),
        ("alpha", ConflictError, "'alpha' exists already"),
    ],
)
def test_project_names_are_checked(db_engine: Engine, name: str, error: type[Exception], message: str) -> None:
    with session_scope(db_engine) as session:
        create_project(session, name="alpha")
    with pytest.raises(error, match=message), session_scope(db_engine) as session:
        create_project(session, name=name)


def test_unknown_project_error_lists_the_existing_ones(db_engine: Engine) -> None:
    with session_scope(db_engine) as session:
        create_project(session, name="alpha")
        create_project(session, name="beta")
        with pytest.raises(NotFoundError, match=r"No project named 'gamma'\. Projects: 'alpha', 'beta'\."):
            get_project(session, "gamma")


def test_delete_project_removes_every_child_row_and_nothing_else(db_engine: Engine) -> None:
    import_file(db_engine, project="keep", path=DATA / "labelstudio_export.json")
    keep = dump(db_engine)
    import_file(db_engine, project="drop", path=DATA / "refinery_export.json")
    with session_scope(db_engine) as session:
        drop_id = get_project(session, "drop").id
        assert session.execute(select(func.count()).select_from(RecordTokens)).scalar_one() > 0

    with session_scope(db_engine) as session:
        delete_project(session, name="drop")

    after = dump(db_engine)
    # Annotators are shared across projects; "imported" came with the refinery file and stays.
    assert {k: v for k, v in after.items() if k != "annotator"} == {k: v for k, v in keep.items() if k != "annotator"}
    with session_scope(db_engine) as session:
        for model in (Attribute, Record, LabelingTask, LabelAssociation):
            left = session.execute(select(func.count()).where(model.project_id == drop_id)).scalar_one()
            assert left == 0, model.__name__
        assert session.get(Project, drop_id) is None


def test_bump_revision_increments(db_engine: Engine) -> None:
    with session_scope(db_engine) as session:
        project = create_project(session, name="p")
        bump_revision(session, project.id)
        bump_revision(session, project.id)
    with session_scope(db_engine) as session:
        assert get_project(session, "p").revision == 2


# --- tasks and labels ----------------------------------------------------------------------------------------------


@pytest.fixture()
def shop(db_engine: Engine) -> Engine:
    """A project 'shop' with attributes id (INTEGER), text (TEXT), category (CATEGORY), score, active."""
    import_file(db_engine, project="shop", path=DATA / "records.csv")
    return db_engine


def test_create_task_assigns_hotkeys_colours_and_positions(shop: Engine) -> None:
    names = [f"l{i}" for i in range(12)]
    with session_scope(shop) as session:
        project = get_project(session, "shop")
        task = create_task(session, project=project, name="topic", kind="classification", labels=names)
        labels = list_labels(session, task.id)
    assert [label.name for label in labels] == names
    assert [label.hotkey for label in labels] == list(HOTKEYS[:12])
    assert [label.hotkey for label in labels][:10] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "q"]
    assert [label.color for label in labels] == [PALETTE[i % 10] for i in range(12)]
    assert [label.position for label in labels] == list(range(12))


def test_added_labels_continue_hotkeys_and_positions(shop: Engine) -> None:
    with session_scope(shop) as session:
        project = get_project(session, "shop")
        task = create_task(session, project=project, name="sentiment", kind="classification",
                           labels=["positive", "negative"])
        added = add_labels(session, task=task, names=["neutral"])
        assert [(label.name, label.hotkey, label.position, label.color) for label in added] == [
            ("neutral", "3", 2, PALETTE[2])
        ]
        with pytest.raises(ConflictError, match=r"has label\(s\) 'positive' already"):
            add_labels(session, task=task, names=["positive"])


def test_extraction_tasks_need_a_text_attribute(shop: Engine) -> None:
    with session_scope(shop) as session:
        project = get_project(session, "shop")
        with pytest.raises(ValidationError, match="name the attribute"):
            create_task(session, project=project, name="ner", kind="extraction", labels=["PER"])
        with pytest.raises(ValidationError, match=r"need a TEXT attribute; 'category' is CATEGORY"):
            create_task(session, project=project, name="ner", kind="extraction", attribute="category")
        with pytest.raises(NotFoundError, match=r"No attribute 'body'.*Attributes: id, text, category, score"):
            create_task(session, project=project, name="ner", kind="extraction", attribute="body")
        task = create_task(session, project=project, name="ner", kind="ner", attribute="text", labels=["PER"])
        assert (task.kind, session.get(Attribute, task.attribute_id).name) == ("extraction", "text")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "sentiment"}, ConflictError, "has a task named 'sentiment' already"),
        ({"name": " "}, ValidationError, "needs a name"),
        ({"name": "a__b"}, ValidationError, "contains '__'"),
        ({"name": "t", "kind": "regression"}, ValidationError, "Unknown task kind 'regression'"),
        ({"name": "t", "labels": ["a", "a"]}, ValidationError, "Label 'a' is given twice"),
        ({"name": "t", "labels": ["a", " "]}, ValidationError, "cannot be empty"),
    ],
)
def test_task_creation_rules(shop: Engine, kwargs: dict, error: type[Exception], message: str) -> None:
    with session_scope(shop) as session:
        project = get_project(session, "shop")
        create_task(session, project=project, name="sentiment", kind="classification", labels=["pos"])
    args = {"kind": "classification", "labels": ["x"], **kwargs}
    with pytest.raises(error, match=message), session_scope(shop) as session:
        create_task(session, project=get_project(session, "shop"), **args)


def test_get_task_names_the_existing_tasks(shop: Engine) -> None:
    with session_scope(shop) as session:
        project = get_project(session, "shop")
        create_task(session, project=project, name="sentiment", kind="multi-label", labels=["a"])
        assert get_task(session, project.id, "sentiment").kind == "multilabel"
        with pytest.raises(NotFoundError, match=r"No labeling task named 'topic'.*Tasks: 'sentiment'"):
            get_task(session, project.id, "topic")
    assert parse_kind(" NER ").value == "extraction"


def test_summary_frames(db_engine: Engine) -> None:
    import_file(db_engine, project="news", path=DATA / "refinery_export.json")
    with session_scope(db_engine) as session:
        pid = get_project(session, "news").id
        attrs = attributes_frame(session, pid)
        tasks = tasks_frame(session, pid)
        counts = label_counts(session, pid)
        labeled = labeled_records(session, pid)
    assert list(attrs["attribute"]) == ["running_id", "headline", "source"]
    assert tasks.to_dict("records")[1] == {
        "task": "tone", "kind": "classification", "target": "headline", "labels": "neutral [1], sensational [2]"
    }
    manual = counts[counts["source"] == "MANUAL"].set_index(["task", "label"])["count"].to_dict()
    assert manual == {("clickbait", "no"): 2, ("clickbait", "yes"): 1, ("entities", "LOC"): 3,
                      ("entities", "MONEY"): 1, ("entities", "ORG"): 1, ("entities", "PER"): 1,
                      ("tone", "neutral"): 2, ("tone", "sensational"): 1}
    records_with = labeled.set_index(["task", "source"])["records"].to_dict()
    assert records_with[("clickbait", "WEAK_SUPERVISION")] == 4
    assert records_with[("entities", "MANUAL")] == 3


# --- record pages (the Data page) ----------------------------------------------------------------------------------


def test_page_records_pages_in_running_id_order(shop: Engine) -> None:
    with session_scope(shop) as session:
        pid = get_project(session, "shop").id
        first = page_records(session, project_id=pid, offset=0, limit=3)
        second = page_records(session, project_id=pid, offset=3, limit=3)
        assert count_records(session, pid) == 4
    assert (first.total, second.total) == (4, 4)
    assert [r["text"][:8] for r in first.rows] == ["The batt", "Shipping", "Crème br"]
    assert [r["category"] for r in second.rows] == ["electronics"]
    assert first.keys + second.keys == ["1", "2", "3", "4"]
    assert set(first.rows[0]) == {"id", "text", "category", "score", "active"}


@pytest.mark.parametrize(
    ("search", "keys"),
    [
        ("ELECTRONICS", ["1", "4"]),  # case-insensitive, on CATEGORY attributes
        ("brûlée", ["3"]),  # non-ASCII text
        ('"dry ice"', ["3"]),
        ("weeks,", ["2"]),
        ("%", []),  # LIKE wildcards are literal
        ("_", []),
        ("  ", ["1", "2", "3", "4"]),  # blank: no filter
    ],
)
def test_page_records_search(shop: Engine, search: str, keys: list[str]) -> None:
    with session_scope(shop) as session:
        page = page_records(session, project_id=get_project(session, "shop").id, search=search)
    assert (page.keys, page.total) == (keys, len(keys))


def test_page_records_search_matches_the_record_key(db_engine: Engine) -> None:
    import_file(db_engine, project="shop", path=DATA / "pk_first.csv", primary_key="id")
    with session_scope(db_engine) as session:
        page = page_records(session, project_id=get_project(session, "shop").id, search="30")
    assert page.keys == ["30"]


@pytest.mark.parametrize(
    ("sort_by", "descending", "keys"),
    [
        ("score", False, ["2", "1", "4", "3"]),  # FLOAT, empty last
        ("score", True, ["4", "1", "2", "3"]),  # empty last when descending too
        ("id", True, ["4", "3", "2", "1"]),  # INTEGER: numeric order
        ("category", False, ["1", "4", "3", "2"]),  # ties keep running-id order
        ("active", False, ["2", "4", "1", "3"]),  # BOOLEAN: false first
    ],
)
def test_page_records_sort(shop: Engine, sort_by: str, descending: bool, keys: list[str]) -> None:
    with session_scope(shop) as session:
        page = page_records(session, project_id=get_project(session, "shop").id, sort_by=sort_by,
                            descending=descending)
    assert page.keys == keys


def test_page_records_sorts_numbers_as_numbers(db_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text(json.dumps([{"n": n} for n in (10, 9, 100, -1)]), encoding="utf-8")
    import_file(db_engine, project="n", path=path)
    with session_scope(db_engine) as session:
        page = page_records(session, project_id=get_project(session, "n").id, sort_by="n")
    assert [r["n"] for r in page.rows] == [-1, 9, 10, 100]


def test_page_records_keys_are_kept_when_an_attribute_is_named_id(shop: Engine, tmp_path: Path) -> None:
    path = tmp_path / "more.csv"
    path.write_text("id,text\n100,Another record of this shop\n", encoding="utf-8")
    import_file(shop, project="shop", path=path)
    with session_scope(shop) as session:
        page = page_records(session, project_id=get_project(session, "shop").id, offset=4, limit=1)
        # The attribute 'id' (100) is not the record key (running id 5).
        assert (page.rows[0]["id"], page.keys) == (100, ["5"])
        assert get_record(session, project_id=get_project(session, "shop").id, key="5").data["id"] == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "Page size must be between 1 and 1000; got 0"),
        ({"limit": 1001}, "Page size must be between 1 and 1000; got 1001"),
        ({"offset": -1}, "offset cannot be negative"),
        ({"sort_by": "nope"}, "Cannot sort by 'nope': not an attribute"),
    ],
)
def test_page_records_refuses_bad_arguments(shop: Engine, kwargs: dict, message: str) -> None:
    with session_scope(shop) as session, pytest.raises(ValidationError, match=message):
        page_records(session, project_id=get_project(session, "shop").id, **kwargs)


def test_get_record_by_key(shop: Engine) -> None:
    with session_scope(shop) as session:
        pid = get_project(session, "shop").id
        assert get_record(session, project_id=pid, key="2").data["category"] == "logistics"
        with pytest.raises(NotFoundError, match="No record with id '9'"):
            get_record(session, project_id=pid, key="9")


# --- tokens --------------------------------------------------------------------------------------------------------


def test_tokenize_texts_gives_character_offsets_without_whitespace_tokens() -> None:
    texts = ["Apple buys U.K. startup for $1 billion", "two  spaces\nand a newline", "", None]
    offsets = tokenize_texts(texts)
    assert [texts[0][s:e] for s, e in offsets[0]] == ["Apple", "buys", "U.K.", "startup", "for", "$", "1", "billion"]
    assert [texts[1][s:e] for s, e in offsets[1]] == ["two", "spaces", "and", "a", "newline"]
    assert offsets[2:] == [[], []]


@pytest.mark.parametrize(
    ("start", "end", "tokens"),
    [(0, 5, (0, 1)), (28, 38, (5, 8)), (2, 8, (0, 2)), (5, 6, None), (31, 33, (7, 8))],
)
def test_char_span_to_tokens(start: int, end: int, tokens: tuple[int, int] | None) -> None:
    offsets = tokenize_texts(["Apple buys U.K. startup for $1 billion"])[0]
    assert char_span_to_tokens(offsets, start, end) == tokens


def test_store_and_ensure_tokens(shop: Engine) -> None:
    with session_scope(shop) as session:
        pid = get_project(session, "shop").id
        text = session.execute(select(Attribute).where(Attribute.project_id == pid, Attribute.name == "text"))
        attribute = text.scalar_one()
        rows = session.execute(select(Record.id, Record.data).where(Record.project_id == pid)
                               .order_by(Record.running_id)).all()
        nlp = get_nlp("blank:en")
        stored = store_tokens(session, attribute=attribute, records=[(rows[0][0], rows[0][1]["text"])], nlp=nlp)
        assert ensure_tokens(session, attribute=attribute, nlp=nlp) == 3  # the three others
        assert ensure_tokens(session, attribute=attribute, nlp=nlp) == 0
        loaded = load_tokens(session, attribute_id=attribute.id, record_ids=[rid for rid, _ in rows])
    assert loaded[rows[0][0]] == stored[rows[0][0]]
    assert [loaded[rid] for rid, _ in rows] == tokenize_texts([data["text"] for _, data in rows])


# --- settings and engines ------------------------------------------------------------------------------------------


def test_database_url_overrides_the_sqlite_default(tmp_path: Path) -> None:
    default = load_settings({"LOUPE_HOME": str(tmp_path)})
    assert default.database_url == f"sqlite:///{tmp_path / 'loupe.db'}"
    assert default.chroma_path == tmp_path / "chroma"
    for given in ("postgres://u:p@db/loupe", "postgresql://u:p@db/loupe", "postgresql+psycopg://u:p@db/loupe"):
        settings = load_settings({"LOUPE_HOME": str(tmp_path), "DATABASE_URL": given})
        assert settings.database_url == "postgresql+psycopg://u:p@db/loupe"


def test_get_engine_uses_database_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    engine = get_engine()
    assert engine is make_engine(db_url)
    expected = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    assert engine.dialect.name == expected
    with session_scope(engine) as session:
        create_project(session, name="p")
    with session_scope(engine) as session:
        assert session.execute(select(Label)).all() == []
        assert [p.name for p in list_projects(session)] == ["p"]


def test_new_projects_tokenize_with_an_installed_trained_pipeline(monkeypatch) -> None:
    import importlib.util

    from core.tokenize import default_tokenizer

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "en_core_web_md" else None)
    assert default_tokenizer() == "en_core_web_md"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_tokenizer() == "blank:en"
