"""Typed SQLAlchemy Core handles on the store's main tables, for set-based SQL.

SQLModel types a model's attributes as their Python values (``Record.id`` is
``int | None``), so a type checker rejects them inside SQL expressions. The
filters, bulk actions, browser and metrics build their queries on these
``Table`` objects instead; ``ASSOC.alias()`` is a second copy of the
associations for self-joins. Rows and columns are the very same as the models'.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from core.store.models import Annotator, Attribute, Label, LabelAssociation, LabelingTask, Record, RecordTokens

RECORD = cast(Table, Record.__table__)  # type: ignore[attr-defined]
ASSOC = cast(Table, LabelAssociation.__table__)  # type: ignore[attr-defined]
LABEL = cast(Table, Label.__table__)  # type: ignore[attr-defined]
ANNOTATOR = cast(Table, Annotator.__table__)  # type: ignore[attr-defined]
TASK = cast(Table, LabelingTask.__table__)  # type: ignore[attr-defined]
ATTRIBUTE = cast(Table, Attribute.__table__)  # type: ignore[attr-defined]
TOKENS = cast(Table, RecordTokens.__table__)  # type: ignore[attr-defined]
