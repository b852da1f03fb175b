"""Counts for the Overview page: attributes, tasks and labels per source."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.store.models import Label, LabelAssociation, LabelingTask
from core.store.tasks import list_attributes, list_tasks


def attributes_frame(session: Session, project_id: int) -> pd.DataFrame:
    """One row per attribute: name, type, primary key flag."""
    rows = [
        {"attribute": a.name, "type": a.data_type, "primary key": a.is_primary_key}
        for a in list_attributes(session, project_id)
    ]
    return pd.DataFrame(rows, columns=["attribute", "type", "primary key"])


def tasks_frame(session: Session, project_id: int) -> pd.DataFrame:
    """One row per task: name, kind, target, labels (with hotkeys)."""
    attr_names = {a.id: a.name for a in list_attributes(session, project_id)}
    rows = []
    for task in list_tasks(session, project_id):
        labels = session.execute(
            select(Label.name, Label.hotkey).where(Label.task_id == task.id).order_by(Label.position)
        ).all()
        rows.append({
            "task": task.name,
            "kind": task.kind,
            "target": attr_names.get(task.attribute_id, "whole record") if task.attribute_id else "whole record",
            "labels": ", ".join(f"{n} [{k}]" if k else n for n, k in labels),
        })
    return pd.DataFrame(rows, columns=["task", "kind", "target", "labels"])


def label_counts(session: Session, project_id: int) -> pd.DataFrame:
    """Label associations per task, label and source type (MANUAL, WEAK_SUPERVISION, ...)."""
    stmt = (
        select(LabelingTask.name, Label.name, LabelAssociation.source_type, func.count())
        .join(Label, Label.id == LabelAssociation.label_id)
        .join(LabelingTask, LabelingTask.id == LabelAssociation.task_id)
        .where(LabelAssociation.project_id == project_id)
        .group_by(LabelingTask.name, Label.name, LabelAssociation.source_type)
        .order_by(LabelingTask.name, Label.name)
    )
    frame = pd.DataFrame(session.execute(stmt).all(), columns=["task", "label", "source", "count"])
    return frame


def labeled_records(session: Session, project_id: int) -> pd.DataFrame:
    """Per task and source: how many distinct records carry at least one label."""
    stmt = (
        select(LabelingTask.name, LabelAssociation.source_type, func.count(func.distinct(LabelAssociation.record_id)))
        .join(LabelingTask, LabelingTask.id == LabelAssociation.task_id)
        .where(LabelAssociation.project_id == project_id)
        .group_by(LabelingTask.name, LabelAssociation.source_type)
    )
    return pd.DataFrame(session.execute(stmt).all(), columns=["task", "source", "records"])

