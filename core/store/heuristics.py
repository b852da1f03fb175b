"""Tables of heuristics, lookup lists and weak-supervision runs.

- :class:`Heuristic`: one labeling function, lookup-list heuristic or imported/external
  source of votes for one task, with its settings and its last run. Its votes are
  label associations with ``source_type = HEURISTIC`` and ``heuristic_id`` (and
  ``source_id``) = its id, ``source_name`` = its name.
- :class:`LookupList` and :class:`LookupTerm`: named term lists (refinery's knowledge
  bases), usable by name inside labeling functions and as heuristics of their own.
- :class:`WeakSupervisionRun`: one run of a label model over a task's heuristics. Its
  output is label associations with ``source_type = WEAK_SUPERVISION`` and
  ``source_id`` = the run's id; only the latest run of a task keeps labels.

Every id reference is a declared foreign key and every table carries ``project_id``,
so project deletion and snapshots cover these tables without special cases.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.store.models import utcnow


class HeuristicKind(StrEnum):
    LABELING_FUNCTION = "labeling_function"
    LOOKUP_LIST = "lookup_list"
    # Votes written by other code (an active learner, zero-shot) or an import, not run here.
    EXTERNAL = "external"


class RunState(StrEnum):
    FINISHED = "finished"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY = "memory"


class Heuristic(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("task_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    task_id: int = Field(foreign_key="labelingtask.id", index=True)
    name: str = Field(max_length=100)
    description: str = ""
    kind: str = HeuristicKind.LABELING_FUNCTION.value
    # Python source (labeling functions): the function, plus the imports, constants and helpers it needs.
    code: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # Whether the heuristic takes part in weak supervision.
    enabled: bool = True
    # Bumped when the code or settings change; a last run of an older version is stale.
    version: int = 1
    # Lookup-list heuristics: the list, the label emitted and the attribute searched.
    lookup_list_id: int | None = Field(default=None, foreign_key="lookuplist.id", index=True)
    label_id: int | None = Field(default=None, foreign_key="label.id")
    attribute_id: int | None = Field(default=None, foreign_key="attribute.id")
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # The last run: None when it never ran.
    last_run_state: str | None = None
    last_run_at: datetime | None = None
    last_run_version: int | None = None
    last_run_duration_s: float | None = None
    last_run_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The record (its key, as users see it) the run failed on, when known.
    last_run_failed_record: str | None = None
    # Label names the heuristic emitted that the task does not define (reported, not stored).
    last_run_invalid_labels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    last_run_invalid_spans: int = 0
    # Records labeled (classification) or spans (extraction) stored by the last run.
    last_run_hits: int = 0
    last_run_logs: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class LookupList(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    # A Python identifier: labeling functions use the list under this name.
    name: str = Field(max_length=100)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LookupTerm(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("lookup_list_id", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    lookup_list_id: int = Field(foreign_key="lookuplist.id", index=True)
    value: str
    comment: str = ""
    # Kept in the list (so it is not added again) but never matched.
    blacklisted: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class WeakSupervisionRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    task_id: int = Field(foreign_key="labelingtask.id", index=True)
    model: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Names of the heuristics that voted (names, not ids: ids in JSON would escape snapshot remapping).
    heuristics: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    duration_s: float = 0.0
    n_records: int = 0
    # Records given a label (classification, multi-label) or holding at least one span (extraction).
    n_labeled: int = 0
    # Label associations written: one per record, per assigned label or per span.
    n_labels: int = 0
    n_manual: int = 0
