"""One home for Loupe's exceptions.

Every error raised by ``core`` derives from :class:`LoupeError`, so the pages and
the CLI can catch one type and show its message. Messages say what was expected,
what was found and how to fix it.
"""

from __future__ import annotations


class LoupeError(Exception):
    """Base class of every error Loupe raises on purpose."""


class NotFoundError(LoupeError):
    """A project, task, label, record or other named thing does not exist."""


class ConflictError(LoupeError):
    """A name is already taken, or a write would contradict stored data."""


class ValidationError(LoupeError):
    """An argument or a value is not of the expected form."""


class DataImportError(LoupeError):
    """An import was refused; nothing was written.

    Carries the file name and, where known, the 1-based line or row number.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = ""
        if file and line is not None:
            where = f"{file}, line {line}: "
        elif file:
            where = f"{file}: "
        super().__init__(f"{where}{message}")


class ArchiveError(LoupeError):
    """A zip archive (a protected export, an upload, a snapshot) cannot be used safely.

    Wrong or missing password, a damaged file, member paths that escape the
    archive, more inflated data than allowed, or parts missing or altered.
    """
