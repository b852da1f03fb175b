"""Exporters: a project's records and labels to refinery JSON/CSV/XLSX, Label Studio, Labelbox, CoNLL and spaCy.

Every exporter streams: records are read in chunks and written one by one, so
memory does not grow with the project. A password puts the file in an AES-256
zip. File names follow ``{project}_{format}_{rows}.{ext}[.zip]``.
"""

from core.exporters.options import (
    DEFAULT_SOURCES,
    FORMATS,
    ExportOptions,
    LabelboxFilters,
    LabelboxParams,
    RowSpec,
    default_options,
    export_filename,
    mime_type,
    parse_range,
    parse_rows,
)
from core.exporters.run import (
    ExportResult,
    check_export,
    export_bytes,
    export_project,
    export_session,
    labelstudio_config,
)
from core.exporters.view import available_sources

__all__ = [
    "DEFAULT_SOURCES",
    "FORMATS",
    "ExportOptions",
    "ExportResult",
    "LabelboxFilters",
    "LabelboxParams",
    "RowSpec",
    "available_sources",
    "check_export",
    "default_options",
    "export_bytes",
    "export_filename",
    "export_project",
    "export_session",
    "labelstudio_config",
    "mime_type",
    "parse_range",
    "parse_rows",
]
