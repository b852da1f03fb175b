"""Round trips: a refinery JSON or a Label Studio export, imported into a new project, gives the same
records and the same manual labels, checked label by label on the labeled demo project."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.exporters import ExportOptions, export_project
from core.importers import import_file
from core.store import session_scope
from core.store.models import Annotator, Label, LabelAssociation, Record
from core.store.projects import get_project
from core.store.tasks import list_tasks
from core.valid_labels import valid_manual_labels
from tests.fixtures_export import LabeledDemo, labeled_demo


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    return labeled_demo(engine)


def records(session: Session, project: str) -> dict[str, dict[str, Any]]:
    pid = get_project(session, project).id
    return {k: d for k, d in session.execute(select(Record.key, Record.data).where(Record.project_id == pid))}


def valid_by_key(session: Session, project: str) -> dict[str, dict[str, Any]]:
    """Task name → record key → valid manual answer."""
    pid = get_project(session, project).id or 0
    keys = dict(session.execute(select(Record.id, Record.key).where(Record.project_id == pid)).all())
    return {
        task.name: {keys[rid]: answer for rid, answer in valid_manual_labels(session, task_id=task.id or 0).items()}
        for task in list_tasks(session, pid)
    }


def manual_by_annotator(session: Session, project: str) -> dict[tuple[str, str, str], set[Any]]:
    """(record key, task, annotator) → the set of (label, token start, token end, gold) they gave."""
    pid = get_project(session, project).id or 0
    tasks = {t.id: t.name for t in list_tasks(session, pid)}
    stmt = (
        select(Record.key, LabelAssociation.task_id, Annotator.name, Label.name, LabelAssociation.token_start,
               LabelAssociation.token_end, LabelAssociation.is_gold)
        .join(Record, Record.id == LabelAssociation.record_id)
        .join(Label, Label.id == LabelAssociation.label_id)
        .outerjoin(Annotator, Annotator.id == LabelAssociation.annotator_id)
        .where(LabelAssociation.project_id == pid, LabelAssociation.source_type == "MANUAL")
    )
    out: dict[tuple[str, str, str], set[Any]] = defaultdict(set)
    for key, task_id, annotator, label, start, end, gold in session.execute(stmt).all():
        out[(key, tasks[task_id], annotator)].add((label, start, end, bool(gold)))
    return dict(out)


def test_refinery_json_round_trip_keeps_records_and_every_valid_manual_label(
    engine: Engine, demo: LabeledDemo, tmp_path: Path
) -> None:
    out = tmp_path / "demo.json"
    export_project(engine, project=demo.name, options=ExportOptions(), out=out)
    import_file(engine, project="copy", path=out)
    with session_scope(engine) as session:
        assert records(session, "copy") == records(session, demo.name)
        original, copy = valid_by_key(session, demo.name), valid_by_key(session, "copy")
    assert set(copy) == set(original) == {"spam", "entities", "topics"}
    for task in original:
        assert copy[task] == original[task], task
    assert len(original["spam"]) == 197  # the demo's 196 imported labels, minus b (no valid label), plus a and c
    assert original["entities"] and original["topics"]


def test_labelstudio_round_trip_keeps_records_and_every_annotators_labels(
    engine: Engine, demo: LabeledDemo, tmp_path: Path
) -> None:
    from tests.fixtures_export import add_label

    # Gold on one task and not on another, by one annotator on one record: Label Studio's ground_truth flag
    # belongs to a whole annotation, so the star must not spread to the other tasks on the way back.
    d = demo.keys[3]
    with session_scope(engine) as session:
        add_label(session, project=demo.name, key=d, task="spam", label="ham", annotator="alice", gold=True)
        add_label(session, project=demo.name, key=d, task="topics", label="promo", annotator="alice")
    out = tmp_path / "demo_ls.json"
    export_project(engine, project=demo.name, options=ExportOptions(format="labelstudio"), out=out)
    import_file(engine, project="copy", path=out)
    with session_scope(engine) as session:
        assert records(session, "copy") == records(session, demo.name)
        assert manual_by_annotator(session, "copy") == manual_by_annotator(session, demo.name)
        copied = manual_by_annotator(session, "copy")
        assert copied[(d, "spam", "alice")] == {("ham", None, None, True)}
        assert copied[(d, "topics", "alice")] == {("promo", None, None, False)}
        assert {gold for (_, _, _, gold) in copied[(d, "entities", "alice")]} == {False}
        original, copy = valid_by_key(session, demo.name), valid_by_key(session, "copy")
        for task in original:
            assert copy[task] == original[task], task
        # Weak supervision comes back as predictions of the model "weak_supervision".
        pid = get_project(session, "copy").id
        models = session.execute(
            select(LabelAssociation.source_name).where(LabelAssociation.project_id == pid,
                                                       LabelAssociation.source_type == "MODEL").distinct()
        ).scalars().all()
    assert set(models) == {"weak_supervision"}
