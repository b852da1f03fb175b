"""``loupe export``, ``loupe snapshot`` and ``loupe restore``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pyzipper
from sqlalchemy.engine import Engine

from core.cli import main
from core.demo import DEMO_PROJECT
from tests.fixtures_export import labeled_demo


@pytest.fixture()
def demo(engine: Engine) -> str:
    return labeled_demo(engine).name


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_every_format(demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("refinery", "csv", "xlsx", "labelstudio", "labelbox", "conll", "spacy"):
        out = tmp_path / f"demo.{fmt}"
        code, printed, err = run(capsys, "export", "--project", demo, "--format", fmt, "--out", str(out))
        assert code == 0, err
        assert printed.startswith("exported 1956 record(s) as " + fmt)
        assert out.stat().st_size > 0


def test_export_rows_columns_and_password(demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "labeled.zip"
    code, printed, _ = run(capsys, "export", "--project", demo, "--format", "refinery", "--out", str(out),
                           "--rows", "labeled", "--password", "pw", "--attributes", "CONTENT", "--tasks", "spam",
                           "--sources", "MANUAL", "--no-confidence")
    assert code == 0 and "password-protected zip" in printed
    with pyzipper.AESZipFile(out) as zf:
        zf.setpassword(b"pw")
        rows = json.loads(zf.read(zf.namelist()[0]))
    assert zf.namelist() == ["YouTube_spam_demo_refinery_labeled.json"]
    assert list(rows[0]) == ["CONTENT", "__spam__MANUAL"] and all(r["__spam__MANUAL"] for r in rows)
    code, printed, _ = run(capsys, "export", "--project", demo, "--format", "refinery", "--out",
                           str(tmp_path / "slice.json"), "--rows", "slice:first five")
    assert printed.startswith("exported 5 record(s)")


def test_labelstudio_config_and_labelbox_options(demo: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    xml = tmp_path / "config.xml"
    code, printed, _ = run(capsys, "export", "--project", demo, "--format", "labelstudio", "--out",
                           str(tmp_path / "ls.json"), "--labelstudio-config", str(xml))
    assert code == 0 and xml.read_text().startswith("<View>")
    out = tmp_path / "lb.ndjson"
    code, printed, _ = run(capsys, "export", "--project", demo, "--format", "labelbox", "--out", str(out),
                           "--tasks", "spam", "--workflow-status", "IN_REWORK", "--exclude-block", "attachments",
                           "--last-activity-at", "2000-01-01", "2100-01-01")
    assert code == 0 and printed.startswith("exported 1 record(s)")
    row = json.loads(out.read_text())
    assert "attachments" not in row and "metadata_fields" in row


def test_bad_export_input_is_one_error_line(demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "export", "--project", "nope", "--format", "refinery", "--out", str(tmp_path / "x"))
    assert code == 1 and err.startswith("error: No project named 'nope'")
    code, _, err = run(capsys, "export", "--project", demo, "--format", "refinery", "--out", str(tmp_path / "x"),
                       "--rows", "min-confidence:high")
    assert code == 1 and "min-confidence needs a number" in err


def test_snapshot_and_restore(demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "demo.zip"
    code, printed, _ = run(capsys, "snapshot", "--project", demo, "--out", str(path), "--password", "pw")
    assert code == 0 and printed.startswith(f"snapshot of {demo!r}")
    code, _, err = run(capsys, "restore", str(path), "--password", "nope")
    assert code == 1 and "wrong password" in err
    code, printed, _ = run(capsys, "restore", str(path), "--password", "pw", "--project", "Restored")
    assert code == 0 and printed.startswith("restored project 'Restored'")
    code, printed, _ = run(capsys, "restore", str(path), "--password", "pw")
    assert printed.startswith(f"restored project '{DEMO_PROJECT} (2)'")
    code, printed, _ = run(capsys, "projects", "--json")
    names = {p["name"]: p["records"] for p in json.loads(printed)}
    assert names == {demo: 1956, "Restored": 1956, f"{DEMO_PROJECT} (2)": 1956}


def test_export_rows_of_a_filter(demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "filtered.json"
    spam_by_alice = ('[{"kind": "manual_label", "task": "spam", "labels": ["spam"], "valid_only": false}, '
                     '{"kind": "annotator", "annotators": ["alice"]}]')
    code, printed, err = run(capsys, "export", "--project", demo, "--format", "refinery", "--out", str(out),
                             "--filter", spam_by_alice)
    assert code == 0, err
    assert printed.startswith("exported 3 record(s)")
    rows = json.loads(out.read_text())
    # a (agreed), b (alice and bob disagree), c (bob said spam, alice's gold ham wins)
    assert [r["__spam__MANUAL"] for r in rows] == ["spam", None, "ham"]
    code, printed, err = run(capsys, "export", "--project", demo, "--format", "csv", "--out", str(tmp_path / "f.csv"),
                             "--rows", "filter", "--filter", '{"conditions": [{"kind": "comment"}]}')
    assert code == 0 and printed.startswith("exported 1 record(s)"), err


def test_rows_filter_without_a_filter_says_how_to_pass_one(demo: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "export", "--project", demo, "--format", "refinery", "--out", str(tmp_path / "x"),
                       "--rows", "filter")
    assert code == 1 and err.startswith("error: --rows filter exports the records matching a filter: pass it as "
                                        "--filter JSON")
    code, _, err = run(capsys, "export", "--project", demo, "--format", "refinery", "--out", str(tmp_path / "x"),
                       "--rows", "gold", "--filter", "[]")
    assert code == 1 and "cannot go with --rows gold" in err
    code, _, err = run(capsys, "export", "--project", demo, "--format", "refinery", "--out", str(tmp_path / "x"),
                       "--filter", "[{")
    assert code == 1 and "--filter is not valid JSON" in err
