"""Zip archives: AES-256 encrypted writing and safe reading.

Protected exports, zipped uploads and project snapshots all go through here.
Writing uses WinZip AES-256 (``pyzipper``), which 7-Zip, WinZip and Python
open. Reading refuses, with an :class:`~core.errors.ArchiveError` that says what
to do, before anything is used:

- a missing or wrong password;
- a damaged file or something that is not a zip;
- member paths that would escape an extraction directory ("zip slip"):
  absolute paths, ``..`` parts, backslashes, drive letters;
- archives that inflate to more than ``max_bytes`` ("zip bomb"). The sizes in
  the zip's directory are checked first, and the bytes actually inflated are
  counted while reading, so a lying directory does not help.

Nothing is ever extracted to disk; members are read as streams.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

import pyzipper

from core.errors import ArchiveError

DEFAULT_MAX_BYTES = 4 * 1024**3
DEFAULT_MAX_MEMBERS = 10_000
CHUNK = 1024 * 1024
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# pyzipper raises its own BadZipFile (a fork of zipfile's); catch both. RuntimeError: bad or missing password.
OPEN_ERRORS: tuple[type[BaseException], ...] = (zipfile.BadZipFile, pyzipper.BadZipFile, OSError, ValueError,
                                               EOFError)
READ_ERRORS: tuple[type[BaseException], ...] = (*OPEN_ERRORS, RuntimeError)

Source = str | Path | bytes | BinaryIO


def is_zip(data: bytes) -> bool:
    """True when ``data`` starts like a zip file (XLSX workbooks do too)."""
    return data[:4] in ZIP_MAGIC


def check_member_name(name: str) -> None:
    """Refuse a member path that could escape the archive when extracted.

    Raises
    ------
    ArchiveError
        For absolute paths, ``..`` parts, backslashes, drive letters and NUL bytes.
    """
    path = PurePosixPath(name)
    unsafe = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part == ".." for part in path.parts)
    )
    if unsafe:
        raise ArchiveError(
            f"the archive holds an unsafe path {name!r} (absolute, with '..' or a drive); "
            "it was refused so it cannot write outside its folder"
        )


@contextmanager
def zip_writer(out: str | Path | BinaryIO, *, password: str | None = None) -> Iterator[pyzipper.AESZipFile]:
    """A zip file open for writing, AES-256 encrypted when ``password`` is given.

    Parameters
    ----------
    out
        A path or a binary stream.
    password
        The password; ``None`` or empty writes a plain (deflated) zip.
    """
    kwargs: dict[str, Any] = {"compression": pyzipper.ZIP_DEFLATED}
    if password:
        kwargs["encryption"] = pyzipper.WZ_AES
    target: Any = str(out) if isinstance(out, Path) else out
    with pyzipper.AESZipFile(target, "w", **kwargs) as zf:
        if password:
            zf.setpassword(password.encode("utf-8"))
            zf.setencryption(pyzipper.WZ_AES, nbits=256)
        yield zf


def zip_file(src: str | Path, out: str | Path | BinaryIO, *, arcname: str, password: str | None = None) -> None:
    """Put one file into a new zip (streamed from disk, never read whole into memory)."""
    check_member_name(arcname)
    with zip_writer(out, password=password) as zf, Path(src).open("rb") as source, zf.open(arcname, "w") as sink:
        while chunk := source.read(CHUNK):
            sink.write(chunk)


class _CountingReader(io.RawIOBase):
    """A member's stream that fails once the archive's inflation budget is spent."""

    def __init__(self, raw: IO[bytes], reader: SafeZip, name: str) -> None:
        self._raw = raw
        self._reader = reader
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._raw.read(len(buffer))
        except READ_ERRORS as e:
            raise self._reader.damaged(self._name, e) from e
        self._reader.spend(len(data), self._name)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


class SafeZip:
    """A zip archive opened for safe reading; use :func:`open_zip`.

    Attributes
    ----------
    label : str
        How messages name the archive (its file name).
    encrypted : bool
        Whether any member is encrypted.
    """

    def __init__(self, zf: pyzipper.AESZipFile, *, label: str, max_bytes: int) -> None:
        self._zf = zf
        self.label = label
        self.max_bytes = max_bytes
        self._spent = 0
        self.encrypted = any(info.flag_bits & 0x1 for info in zf.infolist())

    def names(self) -> list[str]:
        """Member names, directories left out."""
        return [info.filename for info in self._zf.infolist() if not info.is_dir()]

    def size(self, name: str) -> int:
        """Declared inflated size of a member."""
        return int(self._zf.getinfo(name).file_size)

    def spend(self, n: int, name: str) -> None:
        self._spent += n
        if self._spent > self.max_bytes:
            raise ArchiveError(
                f"{self.label}: inflating {name!r} goes past the limit of {self.max_bytes:,} bytes; "
                "the archive is refused as a possible zip bomb"
            )

    def damaged(self, name: str, error: BaseException) -> ArchiveError:
        text = str(error)
        if "password" in text.lower():
            return ArchiveError(f"{self.label}: wrong password; enter the password the file was protected with")
        return ArchiveError(f"{self.label}: member {name!r} is damaged ({text}); the file is corrupted")

    def open(self, name: str) -> BinaryIO:
        """A binary stream of one member, counted against the inflation budget."""
        check_member_name(name)
        try:
            raw = self._zf.open(name)
        except KeyError as e:
            raise ArchiveError(f"{self.label}: the archive has no member {name!r}") from e
        except READ_ERRORS as e:
            raise self.damaged(name, e) from e
        return io.BufferedReader(_CountingReader(raw, self, name), buffer_size=CHUNK)  # type: ignore[return-value]

    def read(self, name: str) -> bytes:
        """A member's bytes (for small members: manifests, single uploads)."""
        with self.open(name) as stream:
            return stream.read()

    def sha256(self, name: str) -> str:
        """Hex SHA-256 of a member's inflated bytes, streamed."""
        digest = hashlib.sha256()
        with self.open(name) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


@contextmanager
def open_zip(
    source: Source,
    *,
    password: str | None = None,
    label: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Iterator[SafeZip]:
    """Open a zip for reading after checking paths, sizes and the password.

    Parameters
    ----------
    source
        A path, the archive's bytes or a binary stream.
    password
        Needed when members are encrypted; checked on opening.
    label
        Name of the archive in messages (default: the file name).
    max_bytes
        Most bytes all members may inflate to together.
    max_members
        Most members the archive may hold.

    Raises
    ------
    ArchiveError
        When the archive is damaged, unsafe, too big, or the password is missing or wrong.
    """
    if isinstance(source, (str, Path)):
        label = label or Path(source).name
        target: Any = str(source)
    elif isinstance(source, bytes):
        target = io.BytesIO(source)
    else:
        target = source
    label = label or "the archive"
    try:
        zf = pyzipper.AESZipFile(target)
    except FileNotFoundError as e:
        raise ArchiveError(f"{label}: no such file") from e
    except OPEN_ERRORS as e:
        raise ArchiveError(f"{label}: not a zip archive, or the file is damaged or incomplete ({e})") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise ArchiveError(f"{label}: {len(infos):,} members, more than the limit of {max_members:,}")
        for info in infos:
            check_member_name(info.filename)
        declared = sum(info.file_size for info in infos)
        if declared > max_bytes:
            raise ArchiveError(
                f"{label}: would inflate to {declared:,} bytes, more than the limit of {max_bytes:,}; "
                "the archive is refused as a possible zip bomb"
            )
        reader = SafeZip(zf, label=label, max_bytes=max_bytes)
        encrypted = [info for info in infos if info.flag_bits & 0x1 and not info.is_dir()]
        if encrypted:
            if not password:
                raise ArchiveError(f"{label}: the archive is password-protected; enter its password")
            zf.setpassword(password.encode("utf-8"))
            # AES zips carry a password check value: opening a member fails fast on a wrong password.
            try:
                zf.open(encrypted[0]).close()
            except READ_ERRORS as e:
                raise reader.damaged(encrypted[0].filename, e) from e
        yield reader


def unzip_single(
    data: bytes, *, name: str, password: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[str, bytes]:
    """The one data file inside an uploaded zip: its name and bytes.

    macOS resource forks (``__MACOSX/``) and hidden files are ignored.

    Raises
    ------
    ArchiveError
        As :func:`open_zip`, and when the zip holds no file or several.
    """
    with open_zip(data, password=password, label=name, max_bytes=max_bytes) as archive:
        members = [
            n for n in archive.names()
            if not n.startswith("__MACOSX/") and not PurePosixPath(n).name.startswith(".")
        ]
        if len(members) != 1:
            found = ", ".join(members[:5]) or "none"
            raise ArchiveError(f"{name}: a zipped upload must hold exactly one data file; found {found}")
        return PurePosixPath(members[0]).name, archive.read(members[0])
