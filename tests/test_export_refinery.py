"""refinery record export: JSON keys and values as documented, CSV/XLSX, rows, file names, passwords."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import pyzipper
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from core.errors import DataImportError, NotFoundError, ValidationError
from core.exporters import ExportOptions, export_filename, export_project, parse_rows
from core.exporters.view import ProjectView
from core.importers import import_file
from core.store import session_scope
from core.store.tasks import list_tasks
from core.valid_labels import valid_manual_labels
from tests.fixtures_export import SEED_RECORD, LabeledDemo, labeled_demo, seed_project

ALL_SOURCES = ("MANUAL", "WEAK_SUPERVISION", "HEURISTIC", "MODEL")


def export_json(engine: Engine, project: str, tmp_path: Path, **options: Any) -> list[dict[str, Any]]:
    out = tmp_path / "export.json"
    export_project(engine, project=project, options=ExportOptions(**options), out=out)
    return list(json.loads(out.read_text(encoding="utf-8")))


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    return labeled_demo(engine)


def test_the_documented_record_comes_back_key_by_key(engine: Engine, tmp_path: Path) -> None:
    # refinery's own export (seed 000) imported, then exported: the same keys in the same order, and the
    # same values but for three documented choices: typed attribute values, confidence as a number, BIO tags.
    seed_project(engine)
    rows = export_json(engine, "clickbait", tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert list(row) == list(SEED_RECORD)
    expected = {
        **SEED_RECORD,
        "running_id": 1479,
        "__clickbait__WEAK_SUPERVISION__confidence": 0.4685,
        "headline__entities__WEAK_SUPERVISION": ["B-MONEY", "I-MONEY", "O", "O", "O", "O", "O"],
    }
    for key, value in expected.items():
        assert row[key] == value, key
    assert isinstance(row["__clickbait__WEAK_SUPERVISION__confidence"], float)


def test_manual_column_holds_the_valid_label_only(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    rows = {str(i + 1): r for i, r in enumerate(export_json(engine, demo.name, tmp_path))}
    a, b, c, d, e = demo.keys[:5]
    assert rows[a]["__spam__MANUAL"] == "spam"  # alice and bob agree
    assert rows[b]["__spam__MANUAL"] is None  # they disagree, no gold star
    assert rows[c]["__spam__MANUAL"] == "ham"  # they disagree, alice's label has the gold star
    assert rows[a]["__topics__MANUAL"] == ["music", "promo"]  # multi-label: names in label order
    assert rows[e]["__topics__MANUAL"] == ["other"]
    assert rows[b]["__topics__MANUAL"] is None
    tags = rows[a]["CONTENT__entities__MANUAL"]
    assert tags[:4] == ["B-CHANNEL", "O", "B-LINK", "I-LINK"] and set(tags[4:]) == {"O"}
    assert rows[d]["CONTENT__entities__MANUAL"][:3] == ["O", "B-LINK", "O"]
    # Weak supervision: label and number; extraction: per-token confidence, 0.0 outside spans.
    assert rows[a]["__spam__WEAK_SUPERVISION"] == "ham" and rows[a]["__spam__WEAK_SUPERVISION__confidence"] == 0.6
    assert rows[a]["CONTENT__entities__WEAK_SUPERVISION__confidence"][:5] == [0.0, 0.0, 0.83, 0.83, 0.0]
    # No label at all: null for classification, all "O" (one per token) for extraction.
    last = rows[str(len(rows))]
    assert last["__spam__WEAK_SUPERVISION"] is None and last["__spam__WEAK_SUPERVISION__confidence"] is None
    assert set(last["CONTENT__entities__MANUAL"]) <= {"O"}


def test_valid_labels_read_per_chunk_equal_core_valid_labels(engine: Engine, demo: LabeledDemo) -> None:
    with session_scope(engine) as session:
        view = ProjectView.open(session, project=demo.name, options=ExportOptions())
        seen: dict[int, dict[int, Any]] = {t.id or 0: {} for t in view.tasks}
        for chunk in view.chunks(chunk_size=3, with_times=False):
            for record in chunk:
                for task_id, answer in record.valid.items():
                    seen[task_id][record.id] = answer
        for task in list_tasks(session, view.project.id or 0):
            assert seen[task.id or 0] == valid_manual_labels(session, task_id=task.id or 0), task.name


def test_heuristic_and_model_columns(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    rows = export_json(engine, demo.name, tmp_path, sources=ALL_SOURCES)
    keys = list(rows[0])
    assert keys[keys.index("__spam__WEAK_SUPERVISION__confidence") + 1 :][:3] == [
        "__spam__INFORMATION_SOURCE__has_link",  # labeling functions give no confidence
        "__spam__MODEL_CALLBACK__zero-shot",
        "__spam__MODEL_CALLBACK__zero-shot__confidence",
    ]
    # Only the tasks a heuristic or model labeled get its columns.
    assert not any("has_link" in k for k in keys if "entities" in k or "topics" in k)
    assert rows[0]["__spam__INFORMATION_SOURCE__has_link"] == "spam"
    assert rows[5]["__spam__MODEL_CALLBACK__zero-shot"] == "ham"
    assert rows[5]["__spam__MODEL_CALLBACK__zero-shot__confidence"] == 0.91
    one = export_json(engine, demo.name, tmp_path, sources=("HEURISTIC:has_link",))
    assert [k for k in one[0] if "__" in k] == ["__spam__INFORMATION_SOURCE__has_link"]
    with pytest.raises(NotFoundError, match="has_link"):
        export_json(engine, demo.name, tmp_path, sources=("HEURISTIC:nope",))


def test_custom_columns(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    rows = export_json(engine, demo.name, tmp_path, attributes=("CONTENT", "VIDEO"), tasks=("spam",),
                       sources=("WEAK_SUPERVISION",), confidence=False)
    assert list(rows[0]) == ["CONTENT", "VIDEO", "__spam__WEAK_SUPERVISION"]
    with pytest.raises(NotFoundError, match="No attribute named 'nope'"):
        export_json(engine, demo.name, tmp_path, attributes=("nope",))


def test_rows_options(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    def keys(rows: str, **kw: Any) -> list[str]:
        out = tmp_path / "rows.json"
        export_project(engine, project=demo.name, options=ExportOptions(rows=parse_rows(rows), **kw), out=out)
        return [str(r["COMMENT_ID"]) for r in json.loads(out.read_text())]

    everything = keys("all")
    assert len(everything) == 1956
    id_of = dict(zip([str(i + 1) for i in range(len(everything))], everything, strict=True))
    with session_scope(engine) as session:
        view = ProjectView.open(session, project=demo.name, options=ExportOptions())
        labeled = {rid for t in view.tasks for rid in view.valid(t.id or 0)}
    assert len(keys("labeled")) == len(labeled)
    assert keys("gold") == [id_of[demo.keys[2]]]
    # Weak supervision at or above 0.7 in any exported task: five spam labels and one span of record a.
    assert keys("min-confidence:0.7") == [id_of[k] for k in [demo.keys[0], *demo.keys[4:8]]]
    assert keys("min-confidence:0.7", tasks=("spam",)) == [id_of[k] for k in demo.keys[4:8]]
    assert keys("slice:first five") == [id_of[k] for k in demo.keys[:5]]
    assert keys("filter", record_keys=(demo.keys[3], demo.keys[1])) == [id_of[demo.keys[1]], id_of[demo.keys[3]]]
    with pytest.raises(NotFoundError, match="No data slice named 'nope'"):
        keys("slice:nope")
    with pytest.raises(ValidationError, match="between 0 and 1"):
        parse_rows("min-confidence:2")
    with pytest.raises(ValidationError, match="Unknown rows"):
        parse_rows("some")


def test_csv_and_xlsx_hold_the_json_columns_with_lists_json_encoded(
    engine: Engine, demo: LabeledDemo, tmp_path: Path
) -> None:
    rows = export_json(engine, demo.name, tmp_path, sources=ALL_SOURCES, rows=parse_rows("labeled"))
    export_project(engine, project=demo.name, out=tmp_path / "e.csv",
                   options=ExportOptions(format="csv", sources=ALL_SOURCES, rows=parse_rows("labeled")))
    export_project(engine, project=demo.name, out=tmp_path / "e.xlsx",
                   options=ExportOptions(format="xlsx", sources=ALL_SOURCES, rows=parse_rows("labeled")))
    with (tmp_path / "e.csv").open(encoding="utf-8", newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    sheet = load_workbook(tmp_path / "e.xlsx", read_only=True).worksheets[0]
    header, *body = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert list(csv_rows[0]) == header == list(rows[0])
    first = rows[0]
    assert json.loads(csv_rows[0]["CONTENT__entities__MANUAL"]) == first["CONTENT__entities__MANUAL"]
    assert json.loads(csv_rows[0]["__topics__MANUAL"]) == first["__topics__MANUAL"]
    assert csv_rows[0]["__spam__WEAK_SUPERVISION__confidence"] == str(first["__spam__WEAK_SUPERVISION__confidence"])
    assert csv_rows[1]["__topics__MANUAL"] == ""  # null → empty cell
    xlsx_first = dict(zip(header, body[0], strict=True))
    assert json.loads(xlsx_first["CONTENT__entities__WEAK_SUPERVISION__confidence"]) == \
        first["CONTENT__entities__WEAK_SUPERVISION__confidence"]
    assert xlsx_first["__spam__WEAK_SUPERVISION__confidence"] == first["__spam__WEAK_SUPERVISION__confidence"]
    assert len(body) == len(csv_rows) == len(rows)


def test_file_names_follow_the_pattern() -> None:
    assert export_filename("YouTube spam (demo)", ExportOptions()) == "YouTube_spam_demo_refinery_all.json"
    assert export_filename("p", ExportOptions(format="csv", rows=parse_rows("labeled"))) == "p_refinery_labeled.csv"
    assert export_filename("p", ExportOptions(format="xlsx", rows=parse_rows("slice:test set"))) == \
        "p_refinery_test_set.xlsx"
    assert export_filename("p", ExportOptions(format="labelstudio", password="pw")) == "p_labelstudio_all.json.zip"
    assert export_filename("p", ExportOptions(format="labelbox", rows=parse_rows("min-confidence:0.8"))) == \
        "p_labelbox_min-confidence-0.8.ndjson"
    assert export_filename("p", ExportOptions(format="conll", rows=parse_rows("gold"))) == "p_conll_gold.conll"
    assert export_filename("p", ExportOptions(format="spacy")) == "p_spacy_all.spacy"


def test_password_puts_the_file_in_an_aes_zip_that_reimports(engine: Engine, demo: LabeledDemo,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "protected.zip"
    result = export_project(engine, project=demo.name, out=out, options=ExportOptions(password="s3cret"))
    assert result.file_name == "YouTube_spam_demo_refinery_all.json.zip"
    with pyzipper.AESZipFile(out) as zf:
        (info,) = zf.infolist()
        assert info.filename == "YouTube_spam_demo_refinery_all.json"
        assert info.flag_bits & 0x1  # encrypted
        with pytest.raises(RuntimeError):
            zf.read(info.filename)  # no password
        zf.setpassword(b"s3cret")
        rows = json.loads(zf.read(info.filename))
    assert len(rows) == 1956
    data = out.read_bytes()
    with pytest.raises(DataImportError, match="wrong password"):
        import_file(engine, project="copy", data=data, name="protected.zip", password="guess")
    with pytest.raises(DataImportError, match="password-protected"):
        import_file(engine, project="copy", data=data, name="protected.zip")
    imported = import_file(engine, project="copy", data=data, name="protected.zip", password="s3cret")
    assert imported.created == 1956


def test_export_streams_into_the_file_without_the_whole_table(engine: Engine, demo: LabeledDemo,
                                                               tmp_path: Path) -> None:
    # The JSON array has one object per line: a reader can stream it too.
    out = tmp_path / "e.json"
    export_project(engine, project=demo.name, out=out, options=ExportOptions())
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 1956 + 2
    assert json.loads(lines[1].rstrip(","))["CONTENT"]


def test_csv_export_round_trips_through_the_importer(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    out = tmp_path / "e.csv"
    export_project(engine, project=demo.name, out=out, options=ExportOptions(format="csv"))
    import_file(engine, project="from csv", path=out)
    copy = export_json(engine, "from csv", tmp_path, sources=("MANUAL",))
    original = export_json(engine, demo.name, tmp_path, sources=("MANUAL",))
    manual = [k for k in original[0] if k.endswith("__MANUAL")]
    assert [{k: r[k] for k in manual} for r in copy] == [{k: r[k] for k in manual} for r in original]
    text = io.StringIO(out.read_text(encoding="utf-8"))
    assert next(csv.reader(text))[:5] == ["CONTENT", "AUTHOR", "DATE", "VIDEO", "COMMENT_ID"]


def test_attribute_named_like_a_label_column_keeps_csv_and_xlsx_cells_in_place(
    engine: Engine, tmp_path: Path
) -> None:
    from core.store.models import Attribute, Project, Record
    from core.store.tasks import create_task
    from tests.fixtures_export import add_label

    with session_scope(engine) as session:
        project = Project(name="clash")
        session.add(project)
        session.flush()
        pid = project.id or 0
        session.add_all([Attribute(project_id=pid, name="text", data_type="TEXT", position=0),
                         Attribute(project_id=pid, name="__sentiment__MANUAL", data_type="TEXT", position=1)])
        session.add(Record(project_id=pid, running_id=1, key="1",
                           data={"text": "hello", "__sentiment__MANUAL": "an attribute value"}))
        session.flush()
        create_task(session, project=project, name="sentiment", kind="classification", labels=["pos", "neg"])
    with session_scope(engine) as session:
        add_label(session, project="clash", key="1", task="sentiment", label="pos", annotator="alice")
        add_label(session, project="clash", key="1", task="sentiment", label="neg", source="WEAK_SUPERVISION",
                  confidence=0.7)
    expected = [["text", "__sentiment__MANUAL", "__sentiment__MANUAL", "__sentiment__WEAK_SUPERVISION",
                 "__sentiment__WEAK_SUPERVISION__confidence"],
                ["hello", "an attribute value", "pos", "neg", "0.7"]]
    export_project(engine, project="clash", out=tmp_path / "e.csv", options=ExportOptions(format="csv"))
    with (tmp_path / "e.csv").open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle)) == expected
    export_project(engine, project="clash", out=tmp_path / "e.xlsx", options=ExportOptions(format="xlsx"))
    sheet = load_workbook(tmp_path / "e.xlsx", read_only=True).worksheets[0]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows == [expected[0], [*expected[1][:4], 0.7]]
