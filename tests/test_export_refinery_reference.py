"""The chunked refinery export writes the same bytes as the straightforward record-by-record one.

``reference_json`` is the export as it was written before it was made fast:
every record a :class:`RecordView` holding all its label associations, one
object built per record by dispatching on each task and source, one encoder
call per object. The exported project has what the fast path treats
specially: several annotators and gold stars, multi-label and extraction
tasks, several machine labels per record (equal confidences, a missing
confidence, overlapping spans), a heuristic known by id and one known only by
the name it was imported with.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import struct
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.exporters import ExportOptions, export_project, parse_rows
from core.exporters.options import MANUAL
from core.exporters.refinery import EXTRACTION, MULTILABEL, JsonLines, bio_tags, cell, manual_spans, plan_columns
from core.exporters.view import Assoc, ProjectView, RecordView, _split_joined, decoded_values, in_running_order
from core.store import session_scope
from core.store.heuristics import Heuristic
from core.store.models import Attribute, Project, Record
from core.store.projects import get_project
from core.store.tasks import get_task
from tests.fixtures_export import LabeledDemo, add_label, labeled_demo

ALL_SOURCES = ("MANUAL", "WEAK_SUPERVISION", "HEURISTIC", "MODEL")


def reference_rows(view: ProjectView) -> list[dict[str, Any]]:
    """The export's objects, built record by record from :meth:`ProjectView.chunks`."""
    columns = plan_columns(view)
    out = []
    for chunk in view.chunks(with_times=False, chunk_size=7):
        for record in chunk:
            row: dict[str, Any] = {}
            for c in columns:
                if c.attribute is not None:
                    row[c.key] = record.data.get(c.attribute)
                    continue
                assert c.task is not None and c.source is not None
                if c.source == (MANUAL, None):
                    row[c.key] = _manual(view, record, c.task.id or 0, c.task.kind, c.task.attribute_id or 0)
                else:
                    value, confidence = _machine(view, record, c.task.id or 0, c.task.kind,
                                                 c.task.attribute_id or 0, c.source)
                    row[c.key] = confidence if c.confidence else value
            out.append(row)
    return out


def _manual(view: ProjectView, record: RecordView, task_id: int, kind: str, attribute_id: int) -> Any:
    answer = record.valid.get(task_id)
    if kind == EXTRACTION:
        return bio_tags(len(record.tokens.get(attribute_id, ())), manual_spans(answer))[0]
    if isinstance(answer, frozenset):
        return view.label_order(list(answer), task_id) if answer else None
    return answer


def _machine(view: ProjectView, record: RecordView, task_id: int, kind: str, attribute_id: int,
             source: tuple[str, str | None]) -> tuple[Any, Any]:
    assocs = record.by(task_id, source)
    if kind == EXTRACTION:
        spans = [(a.label, a.token_start, a.token_end, a.confidence) for a in assocs
                 if a.token_start is not None and a.token_end is not None]
        return bio_tags(len(record.tokens.get(attribute_id, ())), spans)
    if not assocs:
        return None, None
    if len(assocs) == 1 and kind != MULTILABEL:
        return assocs[0].label, assocs[0].confidence
    if kind == MULTILABEL:  # always a list, even with one label
        best: dict[str, Assoc] = {}
        for a in assocs:
            if a.label not in best or (a.confidence or 0.0) > (best[a.label].confidence or 0.0):
                best[a.label] = a
        names = view.label_order(list(best), task_id)
        return names, [best[n].confidence for n in names]
    top = max(assocs, key=lambda a: (a.confidence if a.confidence is not None else -1.0, a.id))
    return top.label, top.confidence


def reference_json(engine: Engine, project: str, options: ExportOptions) -> bytes:
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    with session_scope(engine) as session:
        rows = reference_rows(ProjectView.open(session, project=project, options=options))
    body = ",\n".join(map(encode, rows))
    return ("[\n" + body + "\n]\n" if rows else "[]\n").encode("utf-8")


def reference_csv(engine: Engine, project: str, options: ExportOptions) -> str:
    with session_scope(engine) as session:
        view = ProjectView.open(session, project=project, options=options)
        keys = [c.key for c in plan_columns(view)]
        rows = reference_rows(view)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(keys)
    writer.writerows([cell(v) for v in row.values()] for row in rows)
    return text.getvalue()


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    """The labeled demo plus the labels the fast path has special cases for."""
    demo = labeled_demo(engine)
    keys = demo.keys
    with session_scope(engine) as session:
        project_id = get_project(session, demo.name).id or 0
        spam = get_task(session, project_id, "spam")
        heuristic = Heuristic(project_id=project_id, task_id=spam.id or 0, name="lf_check")
        session.add(heuristic)
        session.flush()

        def add(**kw: Any) -> None:
            add_label(session, project=demo.name, **kw)

        for key in keys[:6]:
            add_label(session, project=demo.name, key=key, task="spam", label="ham", source="HEURISTIC",
                      source_name="lf_check").heuristic_id = heuristic.id
        for i, key in enumerate(keys[:6]):  # multi-label weak supervision: repeats, a missing confidence
            add(key=key, task="topics", label="music", source="WEAK_SUPERVISION", confidence=0.5)
            add(key=key, task="topics", label="promo", source="WEAK_SUPERVISION", confidence=0.7 if i % 2 else None)
            add(key=key, task="topics", label="music", source="WEAK_SUPERVISION", confidence=0.9 if i % 3 else 0.5)
        for key in keys[6:9]:  # two single-label votes, one without confidence
            add(key=key, task="spam", label="spam", source="WEAK_SUPERVISION", confidence=None)
            add(key=key, task="spam", label="ham", source="WEAK_SUPERVISION", confidence=0.99)
        add(key=keys[9], task="spam", label="spam", source="MODEL", source_name="zero-shot", confidence=0.8)
        add(key=keys[9], task="spam", label="ham", source="MODEL", source_name="zero-shot", confidence=0.8)
        add(key=keys[1], task="entities", label="LINK", source="WEAK_SUPERVISION", tokens=(0, 3), confidence=0.4)
        add(key=keys[1], task="entities", label="CHANNEL", source="WEAK_SUPERVISION", tokens=(1, 2), confidence=0.7)
        add(key=keys[1], task="entities", label="CHANNEL", source="HEURISTIC", source_name="imported_lf",
            tokens=(2, 4))
        add(key=keys[3], task="entities", label="LINK", annotator="bob", tokens=(1, 2))
        add(key=keys[4], task="topics", label="other", annotator="carol", gold=True)
        add(key=keys[4], task="topics", label="music", annotator="carol")
        add(key=keys[5], task="topics", label="music", annotator="alice")
        add(key=keys[5], task="topics", label="promo", annotator="bob")
    return demo


OPTION_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "all sources": {"sources": ALL_SOURCES},
    "no confidence": {"sources": ALL_SOURCES, "confidence": False},
    "labeled rows": {"sources": ALL_SOURCES, "rows": "labeled"},
    "a slice": {"sources": ALL_SOURCES, "rows": "slice:first five"},
    "min confidence": {"rows": "min-confidence:0.7"},
    "custom columns": {"attributes": ("VIDEO", "CONTENT"), "tasks": ("topics", "spam"),
                       "sources": ("HEURISTIC:lf_check", "MODEL")},
}


def test_chunked_export_writes_the_reference_bytes(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    for name, options in OPTION_SETS.items():  # one project for all: building it is the slow part
        opts = ExportOptions(**{**options, "rows": parse_rows(options.get("rows", "all"))})
        export_project(engine, project=demo.name, options=opts, out=tmp_path / "fast.json")
        assert (tmp_path / "fast.json").read_bytes() == reference_json(engine, demo.name, opts), name
    csv_options = ExportOptions(format="csv", sources=ALL_SOURCES)
    export_project(engine, project=demo.name, options=csv_options, out=tmp_path / "fast.csv")
    assert (tmp_path / "fast.csv").read_text(encoding="utf-8") == reference_csv(engine, demo.name, csv_options)
    # The special cases are in the file, not only in the fixture.
    export_project(engine, project=demo.name, options=ExportOptions(sources=ALL_SOURCES), out=tmp_path / "all.json")
    rows = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert rows[0]["__spam__INFORMATION_SOURCE__lf_check"] == "ham"
    assert "__spam__INFORMATION_SOURCE__imported_lf" not in rows[1]  # a column only where it labeled
    assert rows[1]["CONTENT__entities__INFORMATION_SOURCE__imported_lf"][2:4] == ["B-CHANNEL", "I-CHANNEL"]
    assert rows[6]["__spam__WEAK_SUPERVISION"] == "ham" and rows[6]["__spam__WEAK_SUPERVISION__confidence"] == 0.99
    assert rows[9]["__spam__MODEL_CALLBACK__zero-shot"] == "ham"  # equal confidences: the last written
    assert rows[0]["__topics__WEAK_SUPERVISION"] == ["music", "promo"]
    assert rows[0]["__topics__WEAK_SUPERVISION__confidence"] == [0.5, None]
    assert rows[4]["__topics__MANUAL"] == ["music", "other"]  # carol's whole answer carries the gold star
    assert rows[5]["__topics__MANUAL"] is None  # alice and bob disagree, no gold


def test_small_chunks_out_of_id_order_write_the_reference_bytes(
    engine: Engine, demo: LabeledDemo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Running ids 1 and 8 swapped: the first chunk of three holds ids 8, 2 and 3, so the range of record ids its
    # labels are read by also holds ids 4 to 7 of later chunks, whose labels must not land in this one.
    with session_scope(engine) as session:
        project_id = get_project(session, demo.name).id or 0
        first, eighth = (session.exec(select(Record).where(Record.project_id == project_id,
                                                           Record.running_id == running)).one()
                         for running in (1, 8))
        first.running_id, eighth.running_id = -1, 1
        session.flush()
        first.running_id = 8
    original = ProjectView.label_chunks
    monkeypatch.setattr(ProjectView, "label_chunks", lambda self, **kw: original(self, **{**kw, "chunk_size": 3}))
    options = ExportOptions(sources=ALL_SOURCES)
    export_project(engine, project=demo.name, options=options, out=tmp_path / "small.json")
    assert (tmp_path / "small.json").read_bytes() == reference_json(engine, demo.name, options)


class Word(str):
    pass


class Size(IntEnum):
    BIG = 3


def test_json_lines_write_what_the_encoder_writes() -> None:
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
    tricky = ['say "hi"', "back\\slash", "tab\tnew\nline\x00\x1f\x7f", "ünï € 😀 \u2028", "%s %d %% 100%", "], [",
              "}, {", '"}, {"a": 1', ""]
    rows = [
        {"text": t, "n": n, "f": f, "b": b, "none": None, "tags": tags, "conf": [f, 0.0], "mixed": mixed}
        for t, n, f, b, tags, mixed in zip(
            tricky,
            [0, -1, 10**30, True, False, 7, 2**63, -(2**70), 42],
            [0.1, 1e-7, 1e22, -0.0, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, 1.0, 100.0],
            [True, False, None, 1, 0.5, "x", [], {}, None],
            [["B-X", "I-X"], [], ["O"], ["], [", 'a"b'], ["%s"], [0.0, 0.83], [None], [1, 2], ["O"]],
            [None, Word("one"), ["a", "b"], {"k": "v", "%": [1, {"x": None}]}, Size.BIG, 2.5, [[1], [2]], (1, 2), "z"],
            strict=True,
        )
    ]
    keys = list(rows[0])
    columns = [[row[k] for row in rows] for k in keys]
    expected = ",\n".join(map(encoder.encode, rows))
    assert JsonLines(keys).encode(columns, len(rows)) == expected
    # List columns in one encoder call: split between items, or value by value when a string holds "], [".
    lists = {keys.index("tags"), keys.index("conf")}
    assert JsonLines(keys, list_positions=lists).encode(columns, len(rows)) == expected
    odd_keys = ['a "quoted" key', "100%", "%s", "", "ключ"]
    odd = [dict(zip(odd_keys, values, strict=True)) for values in [(1, 2, 3, 4, 5), ("a", None, 0.5, [], True)]]
    odd_columns = [[r[k] for r in odd] for k in odd_keys]
    assert JsonLines(odd_keys).encode(odd_columns, 2) == ",\n".join(map(encoder.encode, odd))
    # Repeated keys collapse as in a dict; no keys at all still give one object per record.
    assert JsonLines(["a", "a"]).encode([[1, 2], [3, 4]], 2) == '{"a": 3},\n{"a": 4}'
    assert JsonLines([]).encode([], 3) == "{},\n{},\n{}"
    with pytest.raises(ValueError, match="not JSON compliant"):
        JsonLines(["x"]).encode([[float("nan")]], 1)
    with pytest.raises(ValueError, match="not JSON compliant"):
        JsonLines(["x"], list_positions={0}).encode([[[1.0, float("inf")]]], 1)


def test_json_lines_columns_of_one_type_write_what_the_encoder_writes() -> None:
    """Columns of strings only (split from one orjson call), of few distinct strings, and of ints only."""
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
    # Strings whose encoding holds '","' inside one item: a quote before a comma, a trailing backslash.
    fake_splits = ['ends "quoted",', "trailing\\", 'x","y', ",", '","', "plain", "ünï 😀 \u2028", "tab\t", "%s"]
    cases = {
        "strings": fake_splits,
        "strings and a trailing backslash": ["a\\", "b", "c", "d", "e"],
        "strings and one null": ["a", None, "b", "c", "d"],
        "few distinct": ["spam", "ham", "spam", None, "spam", "ham", "spam", "spam", "spam"],
        "few distinct, many rows": ["spam", "ham", None, 'say "hi"', "ünï"] * 40,
        "many distinct after a few": ["spam"] * 64 + [f"text {i}" for i in range(100)],
        "ints": [0, -1, 2**63 - 1, -(2**63), 7],
        "ints beyond 64 bits": [1, 2**64, -(2**70), 3],
        "floats": [0.1, 0.1 + 0.2, -0.0, 0.0, 1e-4, 9999999999999998.0, 1 / 3, 2.0**53, 123456.789],
        "floats with exponents": [1e16, 1e22, 5e-324, 1.7976931348623157e308, -2.5e-300, 0.5],
        "floats below 1e-4": [0.5, 1e-5, -9.566643226452217e-05, 0.2],
    }
    rng = random.Random(7)  # random bit patterns and magnitudes, a column of each
    for i in range(20):
        doubles = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(500)]
        scaled = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-5, 17) for _ in range(500)]
        cases[f"random floats {i}"] = [d for d in doubles if math.isfinite(d)]
        cases[f"random scaled floats {i}"] = scaled
        cases[f"random rounded floats {i}"] = [round(rng.random(), rng.randint(1, 17)) for _ in range(500)]
    for name, column in cases.items():
        rows = [{"v": v, "n": i} for i, v in enumerate(column)]
        expected = ",\n".join(map(encoder.encode, rows))
        assert JsonLines(["v", "n"]).encode([column, list(range(len(column)))], len(column)) == expected, name
        assert JsonLines(["v", "n"]).encode([tuple(column), range(len(column))], len(column)) == expected, name
    for bad in (float("nan"), float("inf"), -float("inf")):  # orjson writes these as null: fail as the encoder does
        with pytest.raises(ValueError, match="not JSON compliant"):
            JsonLines(["x"]).encode([[0.5, bad]], 2)


def add_projects(
    session: Session, kinds: dict[str, str], projects: dict[str, list[dict[str, Any]]]
) -> dict[str, list[Record]]:
    """Projects named as ``projects`` keys, each with the attributes ``kinds`` (name → type) and a record per
    data dict, in running-id order; returns each project's records."""
    out = {}
    for name, records in projects.items():
        project = Project(name=name)
        session.add(project)
        session.flush()
        pid = project.id or 0
        for position, (attribute, kind) in enumerate(kinds.items()):
            session.add(Attribute(project_id=pid, name=attribute, data_type=kind, position=position))
        out[name] = [Record(project_id=pid, running_id=i + 1, key=str(i + 1), data=data)
                     for i, data in enumerate(records)]
        session.add_all(out[name])
        session.flush()
    return out


def test_values_decoded_in_python_equal_the_sql_extraction(engine: Engine, tmp_path: Path) -> None:
    """Record values are decoded in Python unless one is not of its attribute's type: then SQL extracts them,
    as the reference (record by record, values extracted in SQL) does. Names SQL cannot extract are decoded."""
    kinds = {"text": "TEXT", "category": "CATEGORY", "count": "INTEGER", "score": "FLOAT", "flag": "BOOLEAN",
             'say "hi"': "TEXT"}
    fitting = [
        {"text": "ünï \"q\" \\ 😀", "category": "a", "count": -(2**63), "score": 0.1, "flag": True, 'say "hi"': 1},
        {"text": "", "category": None, "count": 2**63 - 1, "score": 1e-7, "flag": False, 'say "hi"': [1, "x"]},
        {"text": "no category, no count"},
    ]
    misfits = [{"text": 5}, {"text": 2.5}, {"text": True}, {"category": ["a"]}, {"count": 2.0}, {"count": "7"},
               {"count": True}, {"count": 2**64}, {"score": 3}, {"score": "0.5"}, {"flag": 1}, {"flag": 0},
               {"flag": "yes"}, {"count": 2**63}]
    # Decoded, though orjson reads it as a float (not as the json module, an int): so does SQL.
    unusual = [{"score": 2**64}, {"score": -(2**70)}, {"score": 10**400}]
    projects = {"fitting": fitting, **{f"odd {i}": [*fitting, odd] for i, odd in enumerate(misfits + unusual)}}
    with session_scope(engine) as session:
        add_projects(session, kinds, projects)
    for name in projects:
        export_project(engine, project=name, options=ExportOptions(), out=tmp_path / "fast.json")
        assert (tmp_path / "fast.json").read_bytes() == reference_json(engine, name, ExportOptions()), name
    with session_scope(engine) as session:
        fitting_view = ProjectView.open(session, project="fitting", options=ExportOptions())
        texts = [json.dumps(data) for data in fitting]
        assert decoded_values(texts, fitting_view.all_attributes[:5], cast=True) is not None
        for bad in misfits:
            assert decoded_values([*texts, json.dumps(bad)], fitting_view.all_attributes[:5], cast=True) is None, bad
        # Data that is not a JSON object (not written by Loupe): SQL extracts, or nothing to read in it.
        text_attribute = fitting_view.all_attributes[:1]
        first = fitting[0]["text"]
        assert decoded_values([texts[0], "[1, 2]"], text_attribute, cast=True) is None
        assert decoded_values([texts[0], "[1, 2]"], text_attribute, cast=False) == [[first, None]]
        # Objects the driver decoded (PostgreSQL) next to texts.
        assert decoded_values([fitting[0], texts[1]], text_attribute, cast=True) == [[first, ""]]


def test_one_weak_label_per_record_as_columns(engine: Engine, tmp_path: Path) -> None:
    """A chunk whose every record has one weak-supervision label reads it as columns: the bytes stay those of
    the reference; so they do when one record has none or two, or running ids do not follow record ids."""
    from core.store.models import Label, LabelAssociation, LabelingTask

    def build(name: str, *, skip: int | None = None, twice: int | None = None, reverse: bool = False) -> None:
        with session_scope(engine) as session:
            project = Project(name=name)
            session.add(project)
            session.flush()
            pid = project.id or 0
            session.add(Attribute(project_id=pid, name="text", data_type="TEXT", position=0))
            tasks = {kind: LabelingTask(project_id=pid, name=kind, kind=kind) for kind in ("classification",
                                                                                         "multilabel")}
            session.add_all(tasks.values())
            session.flush()
            labels = {kind: [Label(task_id=t.id or 0, name=n, position=i) for i, n in enumerate(("b", "a"))]
                      for kind, t in tasks.items()}
            session.add_all([label for task_labels in labels.values() for label in task_labels])
            records = [Record(project_id=pid, running_id=9 - i if reverse else i + 1, key=str(i),
                              data={"text": f"r{i}"}) for i in range(9)]
            session.add_all(records)
            session.flush()
            for i, record in enumerate(records):
                for kind, task in tasks.items():
                    for repeat_ in range(2 if i == twice else 0 if i == skip else 1):
                        session.add(LabelAssociation(
                            project_id=pid, record_id=record.id or 0, task_id=task.id or 0,
                            label_id=labels[kind][(i + repeat_) % 2].id or 0, source_type="WEAK_SUPERVISION",
                            confidence=None if i == 4 else 0.5 + i / 100, is_gold=False))
                if i % 3 == 0:
                    session.add(LabelAssociation(project_id=pid, record_id=record.id or 0,
                                                 task_id=tasks["classification"].id or 0,
                                                 label_id=labels["classification"][1].id or 0, is_gold=False))

    cases = {"one each": {}, "one without": {"skip": 3}, "one with two": {"twice": 5}, "reversed": {"reverse": True}}
    for name, kw in cases.items():
        build(name, **kw)
        with session_scope(engine) as session:
            view = ProjectView.open(session, project=name, options=ExportOptions())
            chunk = next(view.label_chunks())
            assert bool(chunk.columns) == (name == "one each"), name
        export_project(engine, project=name, options=ExportOptions(), out=tmp_path / "fast.json")
        assert (tmp_path / "fast.json").read_bytes() == reference_json(engine, name, ExportOptions()), name
    rows = json.loads((tmp_path / "fast.json").read_text(encoding="utf-8"))  # reversed: record 0 is last
    assert rows[-1]["__multilabel__WEAK_SUPERVISION"] == ["b"] and rows[-1]["__classification__MANUAL"] == "a"
    assert rows[-1]["__multilabel__WEAK_SUPERVISION__confidence"] == [0.5]


def test_stored_texts_stand_for_the_attributes_only_when_they_are_what_the_export_writes(
    engine: Engine, tmp_path: Path
) -> None:
    """A chunk's stored JSON texts are copied in place of its attribute columns when each holds exactly the
    exported attributes, in order, with values of their types; else the values are encoded. The bytes are the
    reference's either way."""
    from sqlalchemy import text

    from core.store.models import Label, LabelAssociation, LabelingTask

    kinds = {"text": "TEXT", "score": "FLOAT", "n": "INTEGER", "flag": "BOOLEAN"}
    fitting = [{"text": "ünï \"q\" \\ 😀 \t", "score": 0.1, "n": -3, "flag": True},
               {"text": "", "score": 1e-7, "n": 2**63 - 1, "flag": None},
               {"text": "x", "score": None, "n": None, "flag": False}]
    odd = {"other order": {"n": 1, "text": "a", "score": 0.5, "flag": True},
           "extra key": {**fitting[0], "x": 1},
           "missing key": {"text": "a", "score": 0.5, "n": 1},
           "huge float": {"text": "a", "score": 2**64, "n": 1, "flag": True},  # orjson reads a float
           "not its type": {"text": 5, "score": 0.5, "n": 1, "flag": True}}
    projects = {"fitting": fitting, **{name: [*fitting, data] for name, data in odd.items()}}
    with session_scope(engine) as session:
        for first in (records[0] for records in add_projects(session, kinds, projects).values()):
            task = LabelingTask(project_id=first.project_id, name="spam", kind="classification")
            session.add(task)
            session.flush()
            label = Label(task_id=task.id or 0, name="spam")
            session.add(label)
            session.flush()
            session.add(LabelAssociation(project_id=first.project_id, record_id=first.id or 0,
                                         task_id=task.id or 0, label_id=label.id or 0, is_gold=False))

    def copied(name: str) -> bool:
        with session_scope(engine) as session:
            return next(ProjectView.open(session, project=name, options=ExportOptions()).label_chunks()).texts \
                is not None

    for name in projects:
        assert copied(name) == (name == "fitting"), name
        export_project(engine, project=name, options=ExportOptions(), out=tmp_path / "fast.json")
        assert (tmp_path / "fast.json").read_bytes() == reference_json(engine, name, ExportOptions()), name
    # Written by another program, with a line break: the page is read as rows and its values encoded, so each
    # object keeps to its line.
    with engine.begin() as conn:
        conn.execute(text("UPDATE record SET data = :data WHERE key = '2' AND project_id = "
                          "(SELECT id FROM project WHERE name = 'fitting')"),
                     {"data": '{"text": "x",\n"score": 0.5, "n": 1, "flag": true}'})
    assert not copied("fitting")
    export_project(engine, project="fitting", options=ExportOptions(), out=tmp_path / "fast.json")
    written = (tmp_path / "fast.json").read_bytes()
    assert written == reference_json(engine, "fitting", ExportOptions())
    assert len(written.decode().splitlines()) == 2 + len(fitting)
    assert json.loads(written)[1]["score"] == 0.5


def test_a_page_sqlite_joined_is_put_in_running_order() -> None:
    assert in_running_order([5, 6], [1, 2], ["a", "b"]) == ([5, 6], [1, 2], ["a", "b"])
    assert in_running_order([5, 6, 7], [3, 1, 2], ["a", "b", "c"]) == ([6, 7, 5], [1, 2, 3], ["b", "c", "a"])
    assert _split_joined([("1,2", "3,4", 2)]) == [(1, 3), (2, 4)]
    assert _split_joined([(None, None, 0)]) == []
    with pytest.raises(ValueError, match="null"):
        _split_joined([("1,2", "3", 2)])
