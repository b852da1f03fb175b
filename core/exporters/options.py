"""What an export contains: format, columns, sources, rows, password.

The ``default`` preset is what refinery's "download records" gives without
customising: every attribute, every task, the valid manual label and the weak
supervision label with its confidence, all records, as refinery JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core.errors import ValidationError

# format → (name used in file names, extension, MIME type)
FORMATS: dict[str, tuple[str, str, str]] = {
    "refinery": ("refinery", "json", "application/json"),
    "csv": ("refinery", "csv", "text/csv"),
    "xlsx": ("refinery", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "labelstudio": ("labelstudio", "json", "application/json"),
    "labelbox": ("labelbox", "ndjson", "application/x-ndjson"),
    "conll": ("conll", "conll", "text/plain"),
    "spacy": ("spacy", "spacy", "application/octet-stream"),
}
# Formats that need an extraction task (token-level training data).
TOKEN_FORMATS = ("conll", "spacy")

MANUAL = "MANUAL"
WEAK_SUPERVISION = "WEAK_SUPERVISION"
HEURISTIC = "HEURISTIC"
MODEL = "MODEL"
DEFAULT_SOURCES = (MANUAL, WEAK_SUPERVISION)
ROW_KINDS = ("all", "labeled", "filter", "slice", "min-confidence", "gold")


@dataclass(frozen=True)
class RowSpec:
    """Which records an export holds.

    ``kind`` is one of ``all``, ``labeled`` (a valid manual label in an exported
    task), ``filter`` (the record keys the caller passes), ``slice`` (a saved
    slice, ``value`` its name), ``min-confidence`` (a weak-supervision label at
    or above ``value``) or ``gold`` (a gold-star manual label).
    """

    kind: str = "all"
    value: str | float | None = None

    @property
    def label(self) -> str:
        """The rows part of the file name."""
        if self.kind == "slice":
            return str(self.value)
        if self.kind == "min-confidence":
            return f"min-confidence-{self.value:g}" if isinstance(self.value, float) else "min-confidence"
        return self.kind


def parse_rows(text: str | RowSpec) -> RowSpec:
    """Parse ``all``, ``labeled``, ``filter``, ``gold``, ``slice:NAME`` or ``min-confidence:0.8``.

    Raises
    ------
    ValidationError
        For anything else, or a threshold outside [0, 1].
    """
    if isinstance(text, RowSpec):
        return text
    raw = (text or "all").strip()
    kind, _, value = raw.partition(":")
    kind = kind.strip().lower()
    if kind in ("all", "labeled", "filter", "gold") and not value:
        return RowSpec(kind)
    if kind == "slice" and value.strip():
        return RowSpec("slice", value.strip())
    if kind == "min-confidence":
        try:
            threshold = float(value)
        except ValueError as e:
            raise ValidationError(f"min-confidence needs a number, e.g. min-confidence:0.8; got {value!r}.") from e
        if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ValidationError(f"min-confidence must be between 0 and 1; got {threshold}.")
        return RowSpec("min-confidence", threshold)
    raise ValidationError(
        f"Unknown rows {raw!r}; use all, labeled, gold, filter, slice:NAME or min-confidence:0.8."
    )


@dataclass(frozen=True)
class LabelboxParams:
    """Which optional blocks a Labelbox export holds (the ``export_params`` of Export v2)."""

    attachments: bool = True
    metadata_fields: bool = True
    data_row_details: bool = True
    project_details: bool = True
    label_details: bool = True
    performance_details: bool = True


@dataclass(frozen=True)
class LabelboxFilters:
    """Labelbox Export v2 ``filters``, combined with AND.

    ``last_activity_at`` and ``label_created_at`` are ``(start, end)`` ranges,
    either end may be None (open). ``workflow_status`` is ``TO_LABEL``,
    ``IN_REVIEW``, ``IN_REWORK`` or ``DONE``.
    """

    last_activity_at: tuple[datetime | None, datetime | None] | None = None
    label_created_at: tuple[datetime | None, datetime | None] | None = None
    workflow_status: str | None = None


@dataclass(frozen=True)
class ExportOptions:
    """Everything that decides an export's content.

    Parameters
    ----------
    format
        One of :data:`FORMATS`.
    attributes
        Attribute names to include, in project order; None means all.
    tasks
        Task names to include; None means all.
    sources
        ``MANUAL``, ``WEAK_SUPERVISION``, ``HEURISTIC`` (every heuristic),
        ``HEURISTIC:name`` (one heuristic), ``MODEL`` or ``MODEL:name``.
    confidence
        Write confidence columns next to weak-supervision (and scored heuristic or model) labels.
    rows
        Which records; see :class:`RowSpec`.
    record_keys, filter_json
        For ``rows="filter"``: the record keys, or the Data page's filter
        (:meth:`core.filters.Filter.to_json`), evaluated when the export runs.
    password
        When set, the file is put in an AES-256 zip protected by it.
    labelbox_params, labelbox_filters
        Labelbox NDJSON only.
    """

    format: str = "refinery"
    attributes: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    confidence: bool = True
    rows: RowSpec = field(default_factory=RowSpec)
    record_keys: tuple[str, ...] | None = None
    filter_json: str | None = None
    password: str | None = None
    labelbox_params: LabelboxParams = field(default_factory=LabelboxParams)
    labelbox_filters: LabelboxFilters = field(default_factory=LabelboxFilters)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValidationError(f"Unknown export format {self.format!r}; use one of: {', '.join(FORMATS)}.")
        object.__setattr__(self, "rows", parse_rows(self.rows))
        if self.rows.kind == "filter" and self.record_keys is None and self.filter_json is None:
            raise ValidationError("rows='filter' exports the current filter: pass the filter or its record keys.")
        for source in self.sources:
            kind, _, _name = source.partition(":")
            if kind not in (MANUAL, WEAK_SUPERVISION, HEURISTIC, MODEL):
                raise ValidationError(
                    f"Unknown source {source!r}; use MANUAL, WEAK_SUPERVISION, HEURISTIC[:name] or MODEL[:name]."
                )

    @property
    def is_default(self) -> bool:
        """True for the one-click preset."""
        return self == ExportOptions()


def default_options(*, password: str | None = None) -> ExportOptions:
    """The ``default`` preset: all attributes and tasks, MANUAL + WEAK_SUPERVISION with confidence, all rows."""
    return ExportOptions(password=password or None)


def export_filename(project: str, options: ExportOptions) -> str:
    """``{project}_{format}_{rows}.{ext}`` plus ``.zip`` when password-protected.

    Characters unsafe in file names become ``_``.
    """
    fmt_name, ext, _mime = FORMATS[options.format]
    name = f"{_safe(project)}_{fmt_name}_{_safe(options.rows.label)}.{ext}"
    return f"{name}.zip" if options.password else name


def mime_type(options: ExportOptions) -> str:
    """The MIME type of the exported file (zip when password-protected)."""
    return "application/zip" if options.password else FORMATS[options.format][2]


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("_.") or "export"


def parse_when(text: str | None, *, end: bool = False) -> datetime | None:
    """A filter bound: ``YYYY-MM-DD`` or ``YYYY-MM-DD hh:mm:ss`` (UTC); empty means open.

    A date alone as the end of a range means the end of that day.
    """
    if text is None or not str(text).strip():
        return None
    raw = str(text).strip()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as e:
        raise ValidationError(f"Dates look like 2024-04-10 or '2024-04-10 15:21:31'; got {raw!r}.") from e
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if end and len(raw) == 10:
        value = value + timedelta(days=1) - timedelta(microseconds=1)
    return value


def parse_range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None] | None:
    """A ``(start, end)`` filter range from two bounds; None when both are open."""
    bounds = (parse_when(start), parse_when(end, end=True))
    if bounds == (None, None):
        return None
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise ValidationError(f"The range starts ({start}) after it ends ({end}).")
    return bounds
