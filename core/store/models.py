"""SQLModel tables of the store: projects, attributes, records, tokens, tasks,
labels, annotators and label associations.

The database is the source of truth; everything else (the Chroma index,
caches) is derived from it. Enumerations are stored as short strings rather
than database enum types so SQLite and PostgreSQL share one schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time in UTC, time-zone aware (SQLModel refuses naive datetimes)."""
    return datetime.now(UTC)


class AttributeType(StrEnum):
    TEXT = "TEXT"
    CATEGORY = "CATEGORY"
    INTEGER = "INTEGER"
    FLOAT = "FLOAT"
    BOOLEAN = "BOOLEAN"


class TaskKind(StrEnum):
    CLASSIFICATION = "classification"
    MULTILABEL = "multilabel"
    EXTRACTION = "extraction"


class SourceType(StrEnum):
    MANUAL = "MANUAL"
    WEAK_SUPERVISION = "WEAK_SUPERVISION"
    HEURISTIC = "HEURISTIC"
    MODEL = "MODEL"


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    # Bumped by every write to the project's data; pages use it in cache keys.
    revision: int = 0
    # spaCy pipeline used to tokenize text attributes ("blank:en" or an installed package name).
    tokenizer: str = "blank:en"


class Attribute(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str
    data_type: str = AttributeType.TEXT.value
    is_primary_key: bool = False
    position: int = 0


class Record(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("project_id", "running_id"),
        # The primary-key value (or the running id as text) addresses a record in the CLI and on re-import.
        UniqueConstraint("project_id", "key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: both unique constraints above start with project_id and serve its lookups.
    project_id: int = Field(foreign_key="project.id")
    running_id: int
    key: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RecordTokens(SQLModel, table=True):
    """spaCy tokens of one text attribute of one record, as character offsets.

    ``offsets`` is a list of ``[start, end]`` pairs (end exclusive), so spans can
    be stored as token ranges and exported as character offsets alike.
    """

    record_id: int = Field(foreign_key="record.id", primary_key=True)
    attribute_id: int = Field(foreign_key="attribute.id", primary_key=True)
    offsets: list[list[int]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class LabelingTask(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str
    # None: the task labels the whole record; else the attribute it labels (extraction needs TEXT).
    attribute_id: int | None = Field(default=None, foreign_key="attribute.id")
    kind: str = TaskKind.CLASSIFICATION.value
    created_at: datetime = Field(default_factory=utcnow)


class Label(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("task_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="labelingtask.id", index=True)
    name: str
    color: str = "#4C78A8"
    hotkey: str | None = None
    position: int = 0


class Annotator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class LabelAssociation(SQLModel, table=True):
    """One label given to one record (or one span of it) by one source."""

    __table_args__ = (
        # Covering for the reads of a task's labels from one source, record by record in writing order (exports,
        # label models): the label and confidence come from the index, not the table. It replaced
        # (task_id, source_type, record_id), its prefix, which browse_indexes.RETIRED_INDEXES drops.
        Index("ix_assoc_task_source_record_label", "task_id", "source_type", "record_id", "id", "label_id",
              "confidence"),
        Index("ix_assoc_record_task", "record_id", "task_id"),
        Index("ix_assoc_project_source", "project_id", "source_type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    record_id: int = Field(foreign_key="record.id")
    task_id: int = Field(foreign_key="labelingtask.id")
    label_id: int = Field(foreign_key="label.id", index=True)
    source_type: str = SourceType.MANUAL.value
    # Polymorphic provenance by source_type: the heuristic's id (HEURISTIC, equal to heuristic_id) or the
    # weak-supervision run's id (WEAK_SUPERVISION, a weaksupervisionrun row); None for MANUAL and imports.
    # Snapshots remap it by source_type (core.snapshot.POLYMORPHIC_REFERENCES).
    source_id: int | None = None
    # The heuristic that produced a HEURISTIC label, as a declared foreign key (integrity, joins, remapping).
    heuristic_id: int | None = Field(default=None, foreign_key="heuristic.id", index=True)
    # Free-text provenance for imported machine labels: a Label Studio model_version, a refinery heuristic name.
    source_name: str | None = None
    annotator_id: int | None = Field(default=None, foreign_key="annotator.id", index=True)
    confidence: float | None = None
    token_start: int | None = None
    token_end: int | None = None  # exclusive
    char_start: int | None = None
    char_end: int | None = None  # exclusive
    is_gold: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    seconds_spent: float | None = None
