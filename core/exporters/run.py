"""Run an export: resolve the options, stream the file to disk, zip it when a password is set."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.archive import zip_file
from core.exporters.labelbox import write_labelbox
from core.exporters.labelstudio import labeling_config, write_labelstudio
from core.exporters.options import TOKEN_FORMATS, ExportOptions, export_filename
from core.exporters.refinery import write_csv, write_json, write_xlsx
from core.exporters.training import extraction_tasks, write_conll, write_spacy
from core.exporters.view import ProjectView
from core.store.engine import session_scope


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    file_name: str
    records: int
    seconds: float
    format: str

    def summary(self) -> str:
        protected = " (password-protected zip)" if self.file_name.endswith(".zip") else ""
        return f"exported {self.records} record(s) as {self.format} to {self.path}{protected} in {self.seconds:.1f}s"


def write_plain(view: ProjectView, path: Path) -> int:
    """Write the export of ``view`` to ``path`` (never zipped); returns the record count."""
    fmt = view.options.format
    if fmt == "xlsx":
        return write_xlsx(view, str(path))
    if fmt in ("csv", "conll"):
        with path.open("w", encoding="utf-8", newline="") as text:
            return write_csv(view, text) if fmt == "csv" else write_conll(view, text)
    writers = {"refinery": write_json, "labelstudio": write_labelstudio, "labelbox": write_labelbox,
               "spacy": write_spacy}
    with path.open("wb") as binary:
        return writers[fmt](view, binary)


def export_session(session: Session, *, project: str, options: ExportOptions, out: str | Path) -> ExportResult:
    """Export within an open session (see :func:`export_project`)."""
    started = time.perf_counter()
    out = Path(out)
    view = ProjectView.open(session, project=project, options=options)
    plain_name = export_filename(view.project.name, dataclasses.replace(options, password=None))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".loupe-export-", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        records = write_plain(view, tmp)
        if options.password:
            zip_file(tmp, out, arcname=plain_name, password=options.password)
        else:
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path=out, file_name=export_filename(view.project.name, options), records=records,
                        seconds=time.perf_counter() - started, format=options.format)


def export_project(engine: Engine, *, project: str, options: ExportOptions, out: str | Path) -> ExportResult:
    """Export a project's records to a file, streamed record by record.

    Parameters
    ----------
    engine
        The store.
    project
        The project's name.
    options
        Format, columns, sources, rows and password (:class:`ExportOptions`).
    out
        The file to write. With a password it is an AES-256 zip holding the
        export under its plain file name.

    Raises
    ------
    NotFoundError
        Unknown project, attribute, task, heuristic, model or slice.
    ValidationError
        Options that do not fit the project (e.g. CoNLL without an extraction task).
    """
    with session_scope(engine) as session:
        return export_session(session, project=project, options=options, out=out)


def export_bytes(engine: Engine, *, project: str, options: ExportOptions) -> tuple[str, bytes]:
    """The export's file name and bytes, for a download button."""
    with tempfile.TemporaryDirectory(prefix="loupe-export-") as tmp:
        result = export_project(engine, project=project, options=options, out=Path(tmp) / "export")
        return result.file_name, result.path.read_bytes()


def check_export(engine: Engine, *, project: str, options: ExportOptions) -> None:
    """Raise the error an export with these options would raise, without writing it (cheap).

    Raises
    ------
    NotFoundError, ValidationError
        As :func:`export_project`.
    """
    with session_scope(engine) as session:
        view = ProjectView.open(session, project=project, options=options)
        if options.format in TOKEN_FORMATS:
            extraction_tasks(view)
        if options.rows.kind == "slice":
            view.row_filter()


def labelstudio_config(engine: Engine, *, project: str, options: ExportOptions | None = None) -> str:
    """The Label Studio labeling config (XML) matching a Label Studio export with these options."""
    with session_scope(engine) as session:
        view = ProjectView.open(session, project=project, options=options or ExportOptions(format="labelstudio"))
        return labeling_config(view)
