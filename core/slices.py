"""Data slices as the browser uses them: save the current filter, list, rename, delete, resolve.

The table is :class:`core.store.slices.DataSlice`. A **dynamic** slice stores the
filter (``Filter.to_dict()``) and is re-evaluated every time it is used, so new
labels move records in or out. A **static** slice freezes the ids that matched
when it was saved (the filter is kept alongside, for the record). **Outlier**
slices (ids with scores) come from the embeddings side and are read like static
ones.

Every way a slice is used goes through here: :func:`slice_condition` (a filter
condition, so the browser, the dashboard, bulk actions and exports can
restrict to a slice), :func:`slice_record_ids` (a labeling queue, an export).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, func, select
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlmodel import Session

from core.errors import ConflictError, ValidationError
from core.filters import Filter, FilterContext, SliceFilter, Sort, Style, compile_filter
from core.store.models import utcnow
from core.store.projects import bump_revision
from core.store.slices import MAX_SLICE_NAME, DataSlice, SliceKind, find_slice, get_slice, list_slices, save_slice
from core.store.slices import delete_slice as _delete_slice
from core.store.tables import RECORD


@dataclass(frozen=True)
class SliceInfo:
    """What the slice list shows for one slice."""

    id: int
    name: str
    kind: str
    records: int
    description: str
    updated_at: datetime


def _filter_of(data: DataSlice) -> Filter:
    return Filter.from_dict(data.filter) if data.filter else Filter()


def save_filter_slice(
    session: Session,
    *,
    project_id: int,
    name: str,
    flt: Filter | None,
    kind: str | SliceKind = SliceKind.DYNAMIC,
    replace: bool = False,
) -> DataSlice:
    """Save ``flt`` as a slice: ``dynamic`` keeps the filter, ``static`` freezes today's matching ids.

    Parameters
    ----------
    project_id
        The project the slice belongs to.
    name
        Unique within the project (at most 100 characters).
    flt
        The browser's current filter; empty saves all records.
    kind
        ``dynamic`` or ``static`` (outlier slices come from outlier detection).
    replace
        Overwrite a slice of the same name instead of refusing.

    Raises
    ------
    ConflictError
        The name is taken and ``replace`` is false.
    ValidationError
        An empty or long name, an outlier kind, or a filter that refers to this very slice.
    """
    slice_kind = SliceKind(str(kind)) if str(kind) in {k.value for k in SliceKind} else None
    if slice_kind not in (SliceKind.DYNAMIC, SliceKind.STATIC):
        raise ValidationError(f"Save a filter as a 'dynamic' or a 'static' slice; got {kind!r}.")
    current = flt or Filter()
    cleaned = (name or "").strip()
    if any(isinstance(c, SliceFilter) and c.slice == cleaned for c in current.conditions):
        raise ValidationError(f"The filter uses slice {cleaned!r} itself; save it under another name.")
    # Compiling checks every name in the filter before anything is saved.
    where = compile_filter(session, project_id=project_id, flt=current, style="in")
    ids: list[int] = []
    if slice_kind is SliceKind.STATIC:
        stmt = select(RECORD.c.id).where(where).order_by(RECORD.c.running_id)
        ids = [int(i) for i in session.execute(stmt).scalars().all()]
    saved = save_slice(session, project_id=project_id, name=cleaned, kind=slice_kind, record_ids=ids,
                       filter=current.to_dict(), replace=replace)
    bump_revision(session, project_id)
    return saved


def save_static_slice(
    session: Session, *, project_id: int, name: str, record_ids: list[int], replace: bool = False
) -> DataSlice:
    """Save given record ids (e.g. rows picked in the grid) as a static slice."""
    known = _project_ids(session, project_id, record_ids)
    strangers = [i for i in record_ids if i not in known]
    if strangers:
        raise ValidationError(
            f"{len(strangers)} record id(s) are not in this project (first: {strangers[0]}); refresh the page."
        )
    saved = save_slice(session, project_id=project_id, name=name, kind=SliceKind.STATIC,
                       record_ids=list(dict.fromkeys(record_ids)), replace=replace)
    bump_revision(session, project_id)
    return saved


def _project_ids(session: Session, project_id: int, record_ids: list[int]) -> set[int]:
    found: set[int] = set()
    ids = list(dict.fromkeys(int(i) for i in record_ids))
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        stmt = select(RECORD.c.id).where(RECORD.c.project_id == project_id, RECORD.c.id.in_(chunk))
        found.update(int(i) for i in session.execute(stmt).scalars().all())
    return found


def rename_slice(session: Session, *, project_id: int, name: str, new_name: str) -> DataSlice:
    """Rename a slice; the new name must be free (and dynamic slices using the old name keep working)."""
    data = get_slice(session, project_id=project_id, name=name)
    cleaned = (new_name or "").strip()
    if not cleaned:
        raise ValidationError("A data slice needs a name; got an empty one.")
    if len(cleaned) > MAX_SLICE_NAME:
        raise ValidationError(f"Slice names have at most {MAX_SLICE_NAME} characters; got {len(cleaned)}.")
    if cleaned == data.name:
        return data
    if find_slice(session, project_id=project_id, name=cleaned) is not None:
        raise ConflictError(f"A data slice named {cleaned!r} exists already; choose another name.")
    old = data.name
    data.name = cleaned
    data.updated_at = utcnow()
    # Dynamic slices that refer to the renamed one follow it.
    for other in list_slices(session, project_id, kind=SliceKind.DYNAMIC):
        flt = _filter_of(other)
        if any(isinstance(c, SliceFilter) and c.slice == old for c in flt.conditions):
            moved = tuple(SliceFilter(cleaned, negate=c.negate) if isinstance(c, SliceFilter) and c.slice == old
                          else c for c in flt.conditions)
            other.filter = Filter(moved).to_dict()
    session.flush()
    bump_revision(session, project_id)
    return data


def delete_slice(session: Session, *, project_id: int, name: str) -> None:
    """Delete a slice; refused while a dynamic slice's filter uses it (the message names them)."""
    target = get_slice(session, project_id=project_id, name=name)
    users = [
        other.name for other in list_slices(session, project_id, kind=SliceKind.DYNAMIC)
        if any(isinstance(c, SliceFilter) and c.slice == target.name for c in _filter_of(other).conditions)
    ]
    if users:
        raise ConflictError(
            f"Slice {name!r} is used by the filter of {', '.join(map(repr, users))}; delete or edit those first."
        )
    _delete_slice(session, project_id=project_id, name=target.name)
    bump_revision(session, project_id)


def slice_filter(session: Session, *, project_id: int, name: str) -> Filter:
    """The saved filter of a slice (a static slice's is what it was frozen from)."""
    return _filter_of(get_slice(session, project_id=project_id, name=name))


def slice_condition(
    session: Session,
    *,
    project_id: int,
    name: str,
    style: Style = "in",
    context: FilterContext | None = None,
) -> ColumnElement[bool]:
    """SQL condition "record is in slice ``name``": the saved filter, or the frozen ids."""
    data = get_slice(session, project_id=project_id, name=name)
    if data.kind == SliceKind.DYNAMIC.value:
        return compile_filter(session, project_id=project_id, flt=_filter_of(data), style=style, context=context)
    ids = [int(i) for i in data.record_ids or []]
    # Inline integers: a large slice would exceed SQLite's limit on bound parameters.
    values: BindParameter[list[int]] = bindparam(f"slice_{data.id}", value=ids, expanding=True,
                                                 literal_execute=True, unique=True)
    return RECORD.c.id.in_(values)


def slice_record_ids(
    session: Session,
    *,
    project_id: int | None = None,
    name: str | None = None,
    slice_id: int | None = None,
    sort: Sort | None = None,
) -> list[int]:
    """Record ids of a slice, by name (with ``project_id``) or by id.

    Static slices keep their saved order, outlier slices their score order
    (best first), dynamic slices are evaluated now (import order, or ``sort``).
    Ids of records deleted since are left out.
    """
    data = _resolve(session, project_id=project_id, name=name, slice_id=slice_id)
    if data.kind == SliceKind.DYNAMIC.value or sort is not None:
        from core.browse import ordered_ids

        flt = _filter_of(data) if data.kind == SliceKind.DYNAMIC.value else Filter((SliceFilter(data.name),))
        return ordered_ids(session, project_id=data.project_id, flt=flt, sort=sort, limit=None)
    saved = [int(i) for i in data.record_ids or []]
    present = _project_ids(session, data.project_id, saved)
    return [i for i in saved if i in present]


def _resolve(session: Session, *, project_id: int | None, name: str | None, slice_id: int | None) -> DataSlice:
    if slice_id is not None:
        found = session.get(DataSlice, slice_id)
        if found is None:
            from core.errors import NotFoundError

            raise NotFoundError(f"No data slice with id {slice_id}; it may have been deleted.")
        return found
    if project_id is None or not name:
        raise ValidationError("Name a slice by project and name, or by its id.")
    return get_slice(session, project_id=project_id, name=name)


def count_slice(session: Session, *, project_id: int, name: str) -> int:
    """Records in the slice now (a dynamic slice is evaluated)."""
    where = compile_filter(session, project_id=project_id, flt=Filter((SliceFilter(name),)), style="in")
    return int(session.execute(select(func.count()).select_from(RECORD).where(where)).scalar_one())


def slices_frame(session: Session, *, project_id: int, counts: bool = True) -> pd.DataFrame:
    """One row per slice: ``name``, ``kind``, ``records`` (now), ``filter`` (described), ``updated``."""
    rows: list[dict[str, Any]] = []
    for data in list_slices(session, project_id):
        flt = _filter_of(data)
        rows.append({
            "name": data.name,
            "kind": data.kind,
            "records": count_slice(session, project_id=project_id, name=data.name) if counts else None,
            "filter": "; ".join(flt.describe()) or ("all records" if data.kind != SliceKind.OUTLIER.value else ""),
            "updated": data.updated_at,
        })
    return pd.DataFrame(rows, columns=["name", "kind", "records", "filter", "updated"])


def slice_infos(session: Session, *, project_id: int) -> list[SliceInfo]:
    """The slices as :class:`SliceInfo` (counts evaluated now)."""
    frame = slices_frame(session, project_id=project_id)
    ids = {d.name: d.id or 0 for d in list_slices(session, project_id)}
    return [SliceInfo(id=ids[r.name], name=r.name, kind=r.kind, records=int(r.records), description=r.filter,
                      updated_at=r.updated) for r in frame.itertuples(index=False)]
