"""Lookup lists: named term lists, their JSON form, and matching them in texts.

A lookup list (refinery's knowledge base) is used three ways:

- inside labeling functions, as a list of its (not blacklisted) terms under the list's
  name (``if any(t in text for t in my_list)``, or ``from knowledge import my_list``);
- as a heuristic of its own (:func:`core.heuristics.add_lookup_heuristic`) that labels
  records (classification) or spans (extraction) containing its terms, matched
  case-insensitively on token boundaries by default (:func:`find_term_spans`);
- filled from manual spans: :func:`add_manual_span_terms` adds a span's text to the list
  named after its label.

JSON form, for import and export::

    {"name": "...", "description": "...", "terms": [{"value": "...", "comment": "", "blacklisted": false}]}
"""

from __future__ import annotations

import json
import keyword
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from core.errors import ConflictError, NotFoundError, ValidationError
from core.store.heuristics import Heuristic, LookupList, LookupTerm
from core.store.models import Attribute, Label, LabelingTask, Project, Record, utcnow
from core.store.projects import bump_revision
from core.tokenize import get_nlp, load_tokens, tokenize_texts

MAX_TERM_LENGTH = 1000
TERM_COLUMNS = ["value", "comment", "blacklisted"]
_RESERVED = {"knowledge"}

__all__ = [
    "add_manual_span_terms",
    "add_terms",
    "create_list",
    "delete_list",
    "export_list",
    "find_list",
    "find_term_spans",
    "get_list",
    "import_list",
    "list_lists",
    "list_name_for_label",
    "lookup_terms_for_code",
    "python_name",
    "remove_terms",
    "set_blacklisted",
    "split_pasted",
    "terms_frame",
]


# --- names ----------------------------------------------------------------------------------------


def python_name(text: str) -> str:
    """A usable list name derived from any text (a label name): ``"Not spam"`` → ``"not_spam"``."""
    name = re.sub(r"\W+", "_", str(text).strip()).strip("_").lower()
    if not name:
        name = "terms"
    if name[0].isdigit():
        name = f"list_{name}"
    if keyword.iskeyword(name) or name in _RESERVED:
        name = f"{name}_terms"
    return name if name.isidentifier() else "terms"


def list_name_for_label(label: str) -> str:
    """The lookup list a label's manual spans go to: the label's own spelling when that is a
    usable list name (``"ORG"`` stays ``"ORG"``, so a list the user made for it is used),
    else :func:`python_name` of it (``"Not spam"`` → ``"not_spam"``)."""
    try:
        return _check_name(label)
    except ValidationError:
        return python_name(label)


def _check_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValidationError("A lookup list needs a name; got an empty one.")
    usable = cleaned.isidentifier() and not keyword.iskeyword(cleaned) and not cleaned.startswith("__")
    if not usable or cleaned in _RESERVED:
        raise ValidationError(
            f"Lookup list name {cleaned!r} cannot be used in labeling functions: use letters, digits and _, "
            f"not starting with a digit, not a Python keyword (e.g. {python_name(cleaned)!r})."
        )
    if len(cleaned) > 100:
        raise ValidationError(f"Lookup list names have at most 100 characters; got {len(cleaned)}.")
    return cleaned


# --- lists ----------------------------------------------------------------------------------------


def list_lists(session: Session, *, project_id: int) -> list[LookupList]:
    """The project's lookup lists by name."""
    stmt = select(LookupList).where(LookupList.project_id == project_id).order_by(LookupList.name)
    return list(session.execute(stmt).scalars().all())


def find_list(session: Session, *, project_id: int, name: str) -> LookupList | None:
    stmt = select(LookupList).where(LookupList.project_id == project_id, LookupList.name == name.strip())
    return session.execute(stmt).scalars().first()


def get_list(session: Session, *, project_id: int, name: str) -> LookupList:
    """The list of that name; the error names the lists that exist."""
    found = find_list(session, project_id=project_id, name=name)
    if found is None:
        known = ", ".join(repr(x.name) for x in list_lists(session, project_id=project_id)) or "none yet"
        raise NotFoundError(f"No lookup list named {name!r} in this project; existing: {known}.")
    return found


def create_list(session: Session, *, project_id: int, name: str, description: str = "") -> LookupList:
    """Create an empty list; raise :class:`ConflictError` if the name is taken."""
    name = _check_name(name)
    if find_list(session, project_id=project_id, name=name) is not None:
        raise ConflictError(f"This project has a lookup list named {name!r} already; choose another name.")
    created = LookupList(project_id=project_id, name=name, description=description.strip())
    session.add(created)
    session.flush()
    bump_revision(session, project_id)
    return created


def delete_list(session: Session, *, lookup_list: LookupList) -> None:
    """Delete a list and its terms; refused while a heuristic is built on it."""
    users = session.execute(select(Heuristic.name).where(Heuristic.lookup_list_id == lookup_list.id)).scalars().all()
    if users:
        raise ConflictError(
            f"Lookup list {lookup_list.name!r} is used by heuristic(s) {', '.join(map(repr, users))}; "
            "delete those first."
        )
    session.execute(delete(LookupTerm).where(LookupTerm.lookup_list_id == lookup_list.id))  # type: ignore[arg-type]
    session.delete(lookup_list)
    session.flush()
    bump_revision(session, lookup_list.project_id)


def _touch(session: Session, lookup_list: LookupList) -> None:
    # Lookup-list heuristics compare this with their last run to tell outdated votes.
    lookup_list.updated_at = utcnow()
    session.add(lookup_list)
    bump_revision(session, lookup_list.project_id)


# --- terms ----------------------------------------------------------------------------------------


def split_pasted(text: str, *, separator: str = "\n") -> list[str]:
    """Terms from pasted text: one per line by default (or split on ``separator``), stripped, no empties."""
    if not separator:
        raise ValidationError("The separator cannot be empty.")
    parts = text.split(separator) if separator != "\n" else text.splitlines()
    return [part.strip() for part in parts if part.strip()]


def _existing_values(session: Session, list_id: int) -> set[str]:
    stmt = select(LookupTerm.value).where(LookupTerm.lookup_list_id == list_id)
    return set(session.execute(stmt).scalars().all())


def add_terms(
    session: Session,
    *,
    lookup_list: LookupList,
    values: Iterable[str],
    comment: str = "",
    blacklisted: bool = False,
) -> list[str]:
    """Add terms (stripped; empty ones and ones already in the list are skipped); returns those added."""
    have = _existing_values(session, lookup_list.id or 0)
    added: list[str] = []
    for raw in values:
        value = str(raw).strip()
        if not value or value in have:
            continue
        if len(value) > MAX_TERM_LENGTH:
            raise ValidationError(f"Terms have at most {MAX_TERM_LENGTH} characters; {value[:30]!r}… has {len(value)}.")
        have.add(value)
        added.append(value)
        session.add(LookupTerm(project_id=lookup_list.project_id, lookup_list_id=lookup_list.id or 0, value=value,
                               comment=comment, blacklisted=blacklisted))
    if added:
        _touch(session, lookup_list)
        session.flush()
    return added


def remove_terms(session: Session, *, lookup_list: LookupList, values: Iterable[str]) -> int:
    """Remove terms by value; returns how many were removed."""
    wanted = [str(v) for v in values]
    if not wanted:
        return 0
    result = session.execute(
        delete(LookupTerm).where(
            LookupTerm.lookup_list_id == lookup_list.id,  # type: ignore[arg-type]
            LookupTerm.value.in_(wanted),  # type: ignore[attr-defined]
        )
    )
    if result.rowcount:  # type: ignore[attr-defined]
        _touch(session, lookup_list)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_blacklisted(session: Session, *, lookup_list: LookupList, values: Iterable[str], blacklisted: bool) -> int:
    """Mark terms as blacklisted (never matched) or not; returns how many changed."""
    wanted = [str(v) for v in values]
    if not wanted:
        return 0
    result = session.execute(
        update(LookupTerm)
        .where(LookupTerm.lookup_list_id == lookup_list.id, LookupTerm.value.in_(wanted))  # type: ignore[arg-type,attr-defined]
        .values(blacklisted=blacklisted)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        _touch(session, lookup_list)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_terms(session: Session, *, lookup_list_id: int, include_blacklisted: bool = True) -> list[LookupTerm]:
    stmt = select(LookupTerm).where(LookupTerm.lookup_list_id == lookup_list_id)
    if not include_blacklisted:
        stmt = stmt.where(LookupTerm.blacklisted.is_(False))  # type: ignore[attr-defined]
    return list(session.execute(stmt.order_by(LookupTerm.value)).scalars().all())


def terms_frame(session: Session, *, lookup_list_id: int) -> pd.DataFrame:
    """The list's terms: value, comment, blacklisted."""
    rows = [(t.value, t.comment, t.blacklisted) for t in list_terms(session, lookup_list_id=lookup_list_id)]
    return pd.DataFrame(rows, columns=TERM_COLUMNS)


def term_counts(session: Session, *, project_id: int) -> dict[int, int]:
    """List id → number of terms."""
    stmt = (
        select(LookupTerm.lookup_list_id, func.count())
        .where(LookupTerm.project_id == project_id)
        .group_by(col(LookupTerm.lookup_list_id))
    )
    return {int(i): int(n) for i, n in session.execute(stmt).all()}


def lookup_terms_for_code(
    session: Session, *, project_id: int, names: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """Name → usable (not blacklisted) terms, for labeling functions; only ``names`` when given."""
    lists = list_lists(session, project_id=project_id)
    if names is not None:
        wanted = set(names)
        lists = [x for x in lists if x.name in wanted]
    return {
        x.name: [t.value for t in list_terms(session, lookup_list_id=x.id or 0, include_blacklisted=False)]
        for x in lists
    }


# --- JSON -----------------------------------------------------------------------------------------


def export_list(session: Session, *, lookup_list: LookupList) -> dict[str, Any]:
    """The list as ``{name, description, terms: [{value, comment, blacklisted}]}``."""
    return {
        "name": lookup_list.name,
        "description": lookup_list.description,
        "terms": [
            {"value": t.value, "comment": t.comment, "blacklisted": bool(t.blacklisted)}
            for t in list_terms(session, lookup_list_id=lookup_list.id or 0)
        ],
    }


def _parse(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data, bytes | str):
        try:
            parsed = json.loads(data)
        except ValueError as e:
            raise ValidationError(f"The lookup list file is not valid JSON: {e}.") from e
    else:
        parsed = dict(data)
    if not isinstance(parsed, dict):
        raise ValidationError(
            "A lookup list file holds one object {name, description, terms}; found a "
            f"{type(parsed).__name__}."
        )
    if not isinstance(parsed.get("terms", []), list):
        raise ValidationError("'terms' must be a list of {value, comment, blacklisted} objects (or of strings).")
    return parsed


def import_list(
    session: Session, *, project_id: int, data: bytes | str | Mapping[str, Any], name: str | None = None
) -> tuple[LookupList, int]:
    """Create a list from its JSON form, or add its terms to the list of that name.

    Terms may be objects ``{value, comment, blacklisted}`` or plain strings. Returns the
    list and how many terms were added.
    """
    parsed = _parse(data)
    list_name = (name or str(parsed.get("name") or "")).strip()
    if not list_name:
        raise ValidationError("The lookup list has no name: add a 'name' to the file or give one.")
    items = []
    for position, item in enumerate(parsed.get("terms", []), start=1):
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict) or not isinstance(item.get("value"), str | int | float):
            raise ValidationError(f"Term {position} must be an object with a 'value' (or a string); got {item!r}.")
        items.append(item)
    target = find_list(session, project_id=project_id, name=list_name)
    if target is None:
        target = create_list(session, project_id=project_id, name=list_name,
                             description=str(parsed.get("description") or ""))
    added = 0
    for item in items:
        added += len(add_terms(session, lookup_list=target, values=[str(item["value"])],
                               comment=str(item.get("comment") or ""), blacklisted=bool(item.get("blacklisted"))))
    return target, added


# --- matching -------------------------------------------------------------------------------------


def find_term_spans(
    text: str,
    offsets: Sequence[Sequence[int]],
    *,
    terms: Sequence[Sequence[str]] | Sequence[str],
    case_sensitive: bool = False,
    whole_tokens: bool = True,
) -> list[tuple[int, int]]:
    """Token spans ``(start, end)`` (end exclusive) of ``text`` where a term occurs.

    Parameters
    ----------
    text, offsets
        The text and its tokens as ``[start, end]`` character offsets.
    terms
        With ``whole_tokens``: each term as its list of token texts (see
        :func:`tokenize_terms`); a match is a run of whole tokens equal to them. Without:
        each term as a string, matched anywhere and widened to the tokens it touches.
    case_sensitive
        Compare as written; by default case is ignored.
    whole_tokens
        Match on token boundaries (default): ``"sub"`` does not match in ``"subscribe"``.

    Returns
    -------
    list of (int, int)
        Non-overlapping spans, left to right, the longest term winning at a position.
    """
    spans: list[tuple[int, int]] = []
    if whole_tokens:
        norm = (lambda s: s) if case_sensitive else str.lower
        tokens = [norm(text[s:e]) for s, e in offsets]
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for term in terms:
            parts = tuple(norm(p) for p in term)  # type: ignore[union-attr]
            if parts:
                by_first.setdefault(parts[0], []).append(parts)
        for candidates in by_first.values():
            candidates.sort(key=len, reverse=True)
        i = 0
        while i < len(tokens):
            for parts in by_first.get(tokens[i], ()):
                if tuple(tokens[i : i + len(parts)]) == parts:
                    spans.append((i, i + len(parts)))
                    i += len(parts)
                    break
            else:
                i += 1
        return spans
    values = sorted({str(t) for t in terms if str(t)}, key=len, reverse=True)
    if not values or not offsets:
        return spans
    pattern = re.compile("|".join(re.escape(v) for v in values), 0 if case_sensitive else re.IGNORECASE)
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    for match in pattern.finditer(text):
        first = bisect_right(ends, match.start())  # first token ending after the match starts
        last = bisect_left(starts, match.end())  # tokens starting before the match ends
        if first < last and (not spans or first >= spans[-1][1]):
            spans.append((first, last))
    return spans


def tokenize_terms(values: Sequence[str], *, nlp: Any = None) -> list[list[str]]:
    """Each term as its token texts, tokenized like the records."""
    return [[value[s:e] for s, e in offs] for value, offs in zip(values, tokenize_texts(values, nlp=nlp), strict=True)]


# --- manual spans ---------------------------------------------------------------------------------


def add_manual_span_terms(
    session: Session, *, task_id: int, record_id: int, label: str, token_start: int, token_end: int
) -> str | None:
    """Add the text of a manual span to the lookup list named after its label (created when missing).

    Call it after storing a manual span (refinery fills its label lists the same way), in
    the same transaction. The list is named after the label (:func:`list_name_for_label`:
    ``"ORG"`` → ``ORG``, ``"Not spam"`` → ``not_spam``) and created when missing.

    Returns
    -------
    str or None
        The term added, or None when the list has it already (or the span has no text).
    """
    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}.")
    if task.attribute_id is None:
        raise ValidationError(f"Task {task.name!r} labels whole records, not spans; spans need an attribute.")
    known = session.execute(select(Label.id).where(Label.task_id == task_id, Label.name == label)).first()
    if known is None:
        raise NotFoundError(f"Task {task.name!r} has no label {label!r}.")
    attribute = session.get(Attribute, task.attribute_id)
    record = session.get(Record, record_id)
    if attribute is None or record is None or record.project_id != task.project_id:
        raise NotFoundError(f"No record with id {record_id} in the task's project.")
    text = "" if record.data.get(attribute.name) is None else str(record.data.get(attribute.name))
    offsets = load_tokens(session, attribute_id=attribute.id or 0, record_ids=[record_id]).get(record_id)
    if offsets is None:
        project = session.get(Project, task.project_id)
        offsets = tokenize_texts([text], nlp=get_nlp(project.tokenizer if project else "blank:en"))[0]
    if not 0 <= token_start < token_end <= len(offsets):
        raise ValidationError(
            f"Span {token_start}:{token_end} is outside the record's {len(offsets)} token(s) (end exclusive)."
        )
    value = text[offsets[token_start][0] : offsets[token_end - 1][1]].strip()
    if not value:
        return None
    list_name = list_name_for_label(label)
    target = find_list(session, project_id=task.project_id, name=list_name)
    if target is None:
        target = create_list(session, project_id=task.project_id, name=list_name,
                             description=f"Spans labeled {label!r} by hand in task {task.name!r}.")
    added = add_terms(session, lookup_list=target, values=[value], comment="manual span")
    return added[0] if added else None
