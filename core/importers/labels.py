"""Labels carried inside imported files.

refinery's record export names label columns ``{attribute}__{task}__{SOURCE}``
(the attribute is empty for whole-record tasks); its upload also accepts
``{attribute}__{task}`` and ``__{task}`` columns of label names. Lists are
multi-label answers or, on a text attribute, per-token tags (BIO, plain or
refinery's ``OUTSIDE``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.errors import DataImportError
from core.importers.readers import RawTable
from core.store.models import SourceType, TaskKind

IMPORT_ANNOTATOR = "imported"
OUTSIDE_TAGS = {"O", "OUTSIDE", ""}
_SOURCES = {"MANUAL", "WEAK_SUPERVISION", "WEAK_SUPERVISION_CONFIDENCE", "INFORMATION_SOURCE", "MODEL_CALLBACK"}


@dataclass
class TaskSpec:
    """A task named by an imported file, with the labels it uses in first-seen order."""

    name: str
    attribute: str | None
    kind: TaskKind = TaskKind.CLASSIFICATION
    labels: list[str] = field(default_factory=list)

    def use(self, label: str) -> None:
        if label not in self.labels:
            self.labels.append(label)


@dataclass
class LabelItem:
    """One label of one imported row, before it is written."""

    row: int
    task: str
    label: str
    source: SourceType
    annotator: str | None = None
    source_name: str | None = None
    confidence: float | None = None
    token_start: int | None = None
    token_end: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    gold: bool = False
    seconds: float | None = None


@dataclass
class TokenCheck:
    """A per-token list in the file: the row's text must have exactly ``n_tags`` tokens."""

    row: int
    attribute: str
    n_tags: int
    column: str


# Who a label column speaks for: (task, source type value, annotator name, source name).
Carrier = tuple[str, str, str | None, str | None]


@dataclass
class ParsedLabels:
    """Tasks, labels and per-token checks of an imported file.

    ``carriers`` names the label columns' sources, empty cells or not: on a
    re-import the file replaces exactly these sources' labels on its rows.
    Parsers without columns (Label Studio) leave it empty; their labels then
    replace only the same source's labels on the records that carry them.
    """

    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    items: list[LabelItem] = field(default_factory=list)
    token_checks: list[TokenCheck] = field(default_factory=list)
    carriers: set[Carrier] = field(default_factory=set)

    def task(self, name: str, attribute: str | None, *, file: str, line: int) -> TaskSpec:
        spec = self.tasks.get(name)
        if spec is None:
            spec = self.tasks[name] = TaskSpec(name=name, attribute=attribute)
        elif spec.attribute != attribute:
            raise DataImportError(
                f"task {name!r} is used both on {spec.attribute or 'the whole record'} and on "
                f"{attribute or 'the whole record'}; one task labels one target",
                file=file,
                line=line,
            )
        return spec


@dataclass(frozen=True)
class LabelColumn:
    key: str
    attribute: str | None
    task: str
    source: SourceType
    source_name: str | None
    is_confidence: bool


def classify_columns(columns: list[str]) -> tuple[list[str], list[LabelColumn]]:
    """Split a file's columns into attribute columns and label columns."""
    plain = [c for c in columns if "__" not in c]
    attributes, label_columns = [], []
    for key in columns:
        column = _parse_label_column(key, set(plain))
        if column is None:
            attributes.append(key)
        else:
            label_columns.append(column)
    return attributes, label_columns


def _parse_label_column(key: str, plain: set[str]) -> LabelColumn | None:
    parts = key.split("__")
    if len(parts) < 2 or not parts[1]:
        return None
    attribute = parts[0] or None
    if attribute is not None and attribute not in plain:
        return None
    task = parts[1]
    if len(parts) == 2:
        return LabelColumn(key, attribute, task, SourceType.MANUAL, None, False)
    source = parts[2]
    if source not in _SOURCES:
        return None
    rest = parts[3:]
    is_conf = bool(rest) and rest[-1] == "confidence"
    if is_conf:
        rest = rest[:-1]
    if source == "MANUAL":
        return LabelColumn(key, attribute, task, SourceType.MANUAL, None, is_conf) if not rest else None
    if source in ("WEAK_SUPERVISION", "WEAK_SUPERVISION_CONFIDENCE"):
        if rest:
            return None
        return LabelColumn(key, attribute, task, SourceType.WEAK_SUPERVISION, None,
                           is_conf or source == "WEAK_SUPERVISION_CONFIDENCE")
    if not rest:
        return None
    kind = SourceType.HEURISTIC if source == "INFORMATION_SOURCE" else SourceType.MODEL
    return LabelColumn(key, attribute, task, kind, "__".join(rest), is_conf)


def _cell(value: Any, *, lists_as_text: bool, file: str, line: int, column: str) -> Any:
    """A label cell as a Python value: CSV and XLSX cells holding JSON lists are decoded."""
    if value is None:
        return None
    if lists_as_text and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise DataImportError(f"column {column!r} holds a malformed JSON list: {e.msg}", file=file,
                                  line=line) from e
    return value


def _is_tags(values: list[Any]) -> bool:
    flat = [v for lst in values for v in lst]
    if not flat or not all(isinstance(v, str) or v is None for v in flat):
        return False
    return any(v is None or v in OUTSIDE_TAGS or v.startswith(("B-", "I-")) for v in flat)


def tags_to_spans(tags: list[Any]) -> list[tuple[str, int, int]]:
    """``["B-PER", "I-PER", "O"]`` → ``[("PER", 0, 2)]``; plain and ``OUTSIDE`` tags too."""
    spans: list[tuple[str, int, int]] = []
    current: str | None = None
    start = 0
    for i, tag in enumerate([*tags, None]):
        tag = None if tag is None or tag in OUTSIDE_TAGS else str(tag)
        begins = tag is not None and tag.startswith("B-")
        name = tag[2:] if tag is not None and tag.startswith(("B-", "I-")) else tag
        if current is not None and (name != current or begins):
            spans.append((current, start, i))
            current = None
        if name is not None and current is None:
            current, start = name, i
    return spans


def parse_label_columns(table: RawTable, columns: list[LabelColumn]) -> ParsedLabels:
    """Turn label columns of every row into tasks and label items."""
    parsed = ParsedLabels()
    file = table.file
    groups: dict[tuple[str | None, str], list[LabelColumn]] = {}
    for col in columns:
        groups.setdefault((col.attribute, col.task), []).append(col)
    for (attribute, task_name), cols in groups.items():
        values = {
            c.key: [
                _cell(row.get(c.key), lists_as_text=table.lists_as_text, file=file, line=line, column=c.key)
                for row, line in zip(table.rows, table.lines, strict=True)
            ]
            for c in cols
        }
        label_cols = [c for c in cols if not c.is_confidence]
        lists = [v for c in label_cols for v in values[c.key] if isinstance(v, list)]
        if lists and attribute is not None and _is_tags(lists):
            kind = TaskKind.EXTRACTION
        elif lists:
            kind = TaskKind.MULTILABEL
        else:
            kind = TaskKind.CLASSIFICATION
        spec = parsed.task(task_name, attribute, file=file, line=table.lines[0])
        spec.kind = kind
        confidence_of = {(c.source, c.source_name): values[c.key] for c in cols if c.is_confidence}
        for col in label_cols:
            annotator = IMPORT_ANNOTATOR if col.source is SourceType.MANUAL else None
            parsed.carriers.add((task_name, col.source.value, annotator, col.source_name))
            confs = confidence_of.get((col.source, col.source_name))
            for row_index, (value, line) in enumerate(zip(values[col.key], table.lines, strict=True)):
                conf = confs[row_index] if confs is not None else None
                _add_cell_labels(parsed, spec, col, value, conf, row_index, file=file, line=line)
    return parsed


def _add_cell_labels(
    parsed: ParsedLabels,
    spec: TaskSpec,
    col: LabelColumn,
    value: Any,
    conf: Any,
    row: int,
    *,
    file: str,
    line: int,
) -> None:
    if value is None or value == "" or value == []:
        return
    annotator = IMPORT_ANNOTATOR if col.source is SourceType.MANUAL else None
    base = {"row": row, "task": spec.name, "source": col.source, "annotator": annotator, "source_name": col.source_name}
    if spec.kind is TaskKind.EXTRACTION:
        if not isinstance(value, list):
            raise DataImportError(f"column {col.key!r} needs a list of per-token tags, found {value!r}",
                                  file=file, line=line)
        token_confs = conf if isinstance(conf, list) else None
        if token_confs is not None and len(token_confs) != len(value):
            raise DataImportError(
                f"column {col.key!r} has {len(value)} tags but its confidence list has {len(token_confs)}",
                file=file, line=line,
            )
        # Extraction is only inferred for attribute-level tasks, so spec.attribute is set.
        check = TokenCheck(row=row, attribute=spec.attribute or "", n_tags=len(value), column=col.key)
        parsed.token_checks.append(check)
        for label, start, end in tags_to_spans(value):
            spec.use(label)
            confidence = None
            if token_confs is not None:
                confidence = _float(sum(_float(c, file=file, line=line) or 0.0 for c in token_confs[start:end])
                                    / (end - start), file=file, line=line)
            parsed.items.append(LabelItem(**base, label=label, token_start=start, token_end=end,
                                          confidence=confidence))
        return
    names = value if isinstance(value, list) else [value]
    for name in names:
        if not isinstance(name, (str, int, float, bool)):
            raise DataImportError(f"column {col.key!r} holds {type(name).__name__} where a label name is expected",
                                  file=file, line=line)
        label = str(name).strip()
        if not label:
            continue
        spec.use(label)
        parsed.items.append(LabelItem(**base, label=label, confidence=_float(conf, file=file, line=line)))


def _float(value: Any, *, file: str, line: int) -> float | None:
    if value is None or value == "" or isinstance(value, list):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise DataImportError(f"confidence {value!r} is not a number", file=file, line=line) from e
