"""AES zips and safe reading (core.archive)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import pyzipper

from core.archive import check_member_name, open_zip, unzip_single, zip_file
from core.errors import ArchiveError


def test_aes_zip_opens_only_with_its_password(tmp_path: Path) -> None:
    src = tmp_path / "data.json"
    src.write_text('[{"a": 1}]')
    out = tmp_path / "data.zip"
    zip_file(src, out, arcname="data.json", password="pässword")
    with pyzipper.AESZipFile(out) as zf:
        info = zf.getinfo("data.json")
        assert info.flag_bits & 0x1 and info.compress_type == pyzipper.ZIP_DEFLATED
        zf.setpassword("pässword".encode())
        assert zf.read("data.json") == b'[{"a": 1}]'
    assert unzip_single(out.read_bytes(), name="data.zip", password="pässword") == ("data.json", b'[{"a": 1}]')
    with pytest.raises(ArchiveError, match="wrong password"):
        unzip_single(out.read_bytes(), name="data.zip", password="guess")
    with pytest.raises(ArchiveError, match="password-protected"):
        unzip_single(out.read_bytes(), name="data.zip")


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\b", "", "a\x00b"])
def test_unsafe_member_names(name: str) -> None:
    with pytest.raises(ArchiveError, match="unsafe path"):
        check_member_name(name)


def test_safe_member_names() -> None:
    for name in ("a.json", "tables/record.jsonl", "dir/sub/file..txt"):
        check_member_name(name)


def plain_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_uploads_hold_one_data_file() -> None:
    data = plain_zip({"__MACOSX/._x.csv": b"junk", "x.csv": b"a,b\n1,2\n"})
    assert unzip_single(data, name="up.zip") == ("x.csv", b"a,b\n1,2\n")
    with pytest.raises(ArchiveError, match=r"exactly one data file; found a\.csv, b\.csv"):
        unzip_single(plain_zip({"a.csv": b"1", "b.csv": b"2"}), name="up.zip")


def test_zip_bombs_are_refused_before_and_while_inflating() -> None:
    data = plain_zip({"zeros.bin": b"\0" * 5_000_000})
    assert len(data) < 10_000
    with pytest.raises(ArchiveError, match="would inflate to 5,000,000 bytes"):
        unzip_single(data, name="bomb.zip", max_bytes=1_000_000)
    with open_zip(data, max_bytes=10_000_000) as archive:
        archive.max_bytes = 100_000  # as if the directory had lied about the size
        with pytest.raises(ArchiveError, match="zip bomb"):
            archive.read("zeros.bin")


def test_damaged_archives() -> None:
    with pytest.raises(ArchiveError, match="not a zip archive"):
        unzip_single(b"PK\x03\x04 but not really", name="bad.zip")
    data = bytearray(plain_zip({"x.csv": b"a,b\n" * 1000}))
    data[60:80] = b"\xff" * 20  # inside the compressed member
    with pytest.raises(ArchiveError, match=r"damaged|not a zip"):
        unzip_single(bytes(data), name="bad.zip")
