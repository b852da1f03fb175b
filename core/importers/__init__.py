"""Importers: files of every supported format into a project, all or nothing."""

from core.importers.load import ImportResult, import_file, read_file
from core.importers.readers import FORMATS

__all__ = ["FORMATS", "ImportResult", "import_file", "read_file"]
