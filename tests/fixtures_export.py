"""Projects for the export and snapshot tests: refinery's documented example, and a labeled demo.

Labels are written as rows directly (not through the labeling API) so each test
states exactly which associations exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.demo import DEMO_PROJECT, load_demo
from core.importers import import_file
from core.store import session_scope
from core.store.models import Annotator, Attribute, LabelAssociation, Record
from core.store.projects import get_project
from core.store.tasks import create_task, get_task, list_labels
from core.tokenize import ensure_tokens, get_nlp, load_tokens

# The record of refinery's "download records" documentation (seed 000), as refinery exports it.
SEED_RECORD: dict[str, Any] = {
    "headline": "$200 Laptops Break a Business Model",
    "running_id": "1479",
    "__clickbait__MANUAL": None,
    "__clickbait__WEAK_SUPERVISION": "yes",
    "__clickbait__WEAK_SUPERVISION__confidence": "0.4685",
    "headline__entities__MANUAL": ["O", "O", "O", "O", "O", "O", "O"],
    "headline__entities__WEAK_SUPERVISION": ["MONEY", "MONEY", "O", "O", "O", "O", "O"],
    "headline__entities__WEAK_SUPERVISION__confidence": [0.83, 0.83, 0.0, 0.0, 0.0, 0.0, 0.0],
}
SEED_PROJECT = "clickbait"


def seed_project(engine: Engine, *, name: str = SEED_PROJECT) -> str:
    """Import the documented record (refinery's own export) into a project; returns its name."""
    import_file(engine, project=name, data=json.dumps([SEED_RECORD]).encode(), name="refinery.json")
    return name


def annotator_id(session: Session, name: str) -> int:
    found = session.execute(select(Annotator.id).where(Annotator.name == name)).scalar()
    if found is not None:
        return int(found)
    annotator = Annotator(name=name)
    session.add(annotator)
    session.flush()
    return annotator.id or 0


def record_id(session: Session, project_id: int, key: str) -> int:
    return int(session.execute(select(Record.id).where(Record.project_id == project_id, Record.key == key))
               .scalar_one())


def add_label(
    session: Session,
    *,
    project: str,
    key: str,
    task: str,
    label: str,
    source: str = "MANUAL",
    annotator: str | None = None,
    confidence: float | None = None,
    tokens: tuple[int, int] | None = None,
    gold: bool = False,
    source_name: str | None = None,
    seconds: float | None = None,
) -> LabelAssociation:
    """Write one label association; ``tokens`` is a token range ``[start, end)`` for extraction tasks."""
    proj = get_project(session, project)
    pid = proj.id or 0
    labeling_task = get_task(session, pid, task)
    label_id = next(lab.id for lab in list_labels(session, labeling_task.id or 0) if lab.name == label)
    rid = record_id(session, pid, key)
    char_start = char_end = None
    if tokens is not None:
        offsets = load_tokens(session, attribute_id=labeling_task.attribute_id or 0, record_ids=[rid])[rid]
        char_start, char_end = offsets[tokens[0]][0], offsets[tokens[1] - 1][1]
    assoc = LabelAssociation(
        project_id=pid, record_id=rid, task_id=labeling_task.id or 0, label_id=label_id or 0, source_type=source,
        source_name=source_name, annotator_id=annotator_id(session, annotator) if annotator else None,
        confidence=confidence, token_start=tokens[0] if tokens else None, token_end=tokens[1] if tokens else None,
        char_start=char_start, char_end=char_end, is_gold=gold, seconds_spent=seconds,
    )
    session.add(assoc)
    session.flush()
    return assoc


@dataclass(frozen=True)
class LabeledDemo:
    """The demo project with more tasks, annotators, machine labels and workflow rows."""

    name: str
    keys: list[str]


def labeled_demo(engine: Engine, *, name: str = DEMO_PROJECT) -> LabeledDemo:
    """The demo project plus: an extraction task on ``CONTENT``, a multi-label task, a second and a third
    annotator (agreeing, disagreeing, gold), weak supervision, a heuristic, a model, workflow, a comment
    and a slice."""
    load_demo(engine, name=name)
    with session_scope(engine) as session:
        project = get_project(session, name)
        pid = project.id or 0
        create_task(session, project=project, name="entities", kind="extraction", attribute="CONTENT",
                    labels=["LINK", "CHANNEL"])
        create_task(session, project=project, name="topics", kind="multilabel", labels=["music", "promo", "other"])
        attribute = session.execute(select(Attribute).where(Attribute.project_id == pid,
                                                            Attribute.name == "CONTENT")).scalar_one()
        ensure_tokens(session, attribute=attribute, nlp=get_nlp(project.tokenizer))
        keys = [str(k) for k in session.execute(select(Record.key).where(Record.project_id == pid)
                                               .order_by(Record.running_id).limit(12)).scalars()]
        a, b, c = keys[0], keys[1], keys[2]

        def add(**kw: Any) -> None:
            add_label(session, project=name, **kw)

        # spam: alice and bob agree on a; disagree on b (no valid label); disagree on c with a gold star.
        add(key=a, task="spam", label="spam", annotator="alice", seconds=4.5)
        add(key=a, task="spam", label="spam", annotator="bob", seconds=3.0)
        add(key=b, task="spam", label="spam", annotator="alice")
        add(key=b, task="spam", label="ham", annotator="bob")
        add(key=c, task="spam", label="ham", annotator="alice", gold=True)
        add(key=c, task="spam", label="spam", annotator="bob")
        # entities: spans by alice on a and on keys[3]; topics: multi-label answers.
        add(key=a, task="entities", label="CHANNEL", annotator="alice", tokens=(0, 1))
        add(key=a, task="entities", label="LINK", annotator="alice", tokens=(2, 4))
        add(key=keys[3], task="entities", label="LINK", annotator="alice", tokens=(1, 2))
        add(key=a, task="topics", label="music", annotator="alice")
        add(key=a, task="topics", label="promo", annotator="alice")
        add(key=keys[4], task="topics", label="other", annotator="bob")
        # machine labels
        for i, key in enumerate(keys[:8]):
            add(key=key, task="spam", label="spam" if i % 2 else "ham", source="WEAK_SUPERVISION",
                confidence=0.6 + i / 40)
            if i % 3 == 0:
                add(key=key, task="spam", label="spam", source="HEURISTIC", source_name="has_link")
        add(key=keys[5], task="spam", label="ham", source="MODEL", source_name="zero-shot", confidence=0.91)
        add(key=a, task="entities", label="LINK", source="WEAK_SUPERVISION", tokens=(2, 4), confidence=0.83)
        _workflow_and_more(session, pid, [record_id(session, pid, k) for k in keys], keys)
    return LabeledDemo(name=name, keys=keys)


def _workflow_and_more(session: Session, pid: int, ids: list[int], keys: list[str]) -> None:
    from core.store.comments import add_comment
    from core.store.slices import save_slice
    from core.store.workflow import LabelReview, set_status

    spam = get_task(session, pid, "spam").id or 0
    alice, carol = annotator_id(session, "alice"), annotator_id(session, "carol")
    set_status(session, project_id=pid, record_id=ids[0], task_id=spam, to="in_review", by=alice)
    set_status(session, project_id=pid, record_id=ids[0], task_id=spam, to="done", by=carol)
    set_status(session, project_id=pid, record_id=ids[2], task_id=spam, to="rework", by=carol)
    session.add(LabelReview(project_id=pid, record_id=ids[0], task_id=spam, annotator_id=alice, reviewer_id=carol,
                            decision="accepted", labels=["spam"], seconds_to_review=2.0, comment="fine"))
    add_comment(session, record_id=ids[1], text="annotators disagree", annotator_id=carol)
    save_slice(session, project_id=pid, name="first five", kind="static", record_ids=ids[:5])
    session.flush()
