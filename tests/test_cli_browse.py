"""``loupe metrics``, ``loupe browse`` and ``loupe slices`` in-process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from core.cli import main
from core.store import make_engine, session_scope
from core.store.embeddings import get_or_create_space, insert_vectors, write_record_hashes
from core.store.models import Annotator, Attribute, LabelAssociation, Project, Record, SourceType
from core.store.tasks import create_task, list_labels
from tests.fixtures_browse import build_browse_fixture


@pytest.fixture()
def cli_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    url = f"sqlite:///{tmp_path / 'loupe.db'}"
    monkeypatch.setenv("LOUPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", url)
    return make_engine(url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def embedded_project(engine: Engine) -> None:
    """Project "topics": 40 records in two clusters of 8-d vectors, labeled by alice; record "7" mislabeled."""
    rng = np.random.default_rng(0)
    with session_scope(engine) as session:
        project = Project(name="topics")
        session.add(project)
        session.flush()
        pid = project.id or 0
        attr = Attribute(project_id=pid, name="text", data_type="TEXT")
        session.add(attr)
        who = Annotator(name="alice")
        session.add(who)
        session.flush()
        task = create_task(session, project=project, name="topic", kind="classification", labels=["a", "b"])
        label = {lb.name: lb.id for lb in list_labels(session, task.id or 0)}
        vectors, hashes = {}, {}
        for i in range(40):
            truth = "a" if i < 20 else "b"
            given = "b" if i == 7 else truth
            record = Record(project_id=pid, running_id=i, key=str(i), data={"text": f"text {i}"})
            session.add(record)
            session.flush()
            session.add(LabelAssociation(project_id=pid, record_id=record.id or 0, task_id=task.id or 0,
                                         label_id=label[given] or 0, source_type=SourceType.MANUAL.value,
                                         annotator_id=who.id))
            center = np.zeros(8, dtype=np.float32)
            center[0 if truth == "a" else 1] = 4.0
            digest = hashlib.sha256(f"text {i}".encode()).hexdigest()
            vectors[digest] = (center + rng.normal(0, 0.5, 8)).astype(np.float32)
            hashes[record.id or 0] = digest
        space = get_or_create_space(session, project_id=pid, attribute_id=attr.id or 0, model="test-model")
        insert_vectors(session, model="test-model", vectors=vectors)
        write_record_hashes(session, space=space, changed=hashes, removed=[], dim=8)


def test_metrics_json_has_confusion_distribution_and_label_errors(
    cli_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    embedded_project(cli_engine)
    code, out, err = run(capsys, "metrics", "--project", "topics", "--task", "topic", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["confusion"] == {"labels": ["a", "b"], "level": "record", "matrix": [[0, 0], [0, 0]],
                                 "rates": [[None, None], [None, None]]}
    assert data["distribution"] == {"manual": {"a": 19, "b": 21}, "weak_supervision": {"a": 0, "b": 0}}
    first = data["label_errors"][0]
    assert (first["id"], first["label"], first["suggested"]) == ("7", "b", "a")
    assert 0.0 <= first["score"] < 0.5
    assert set(first) >= {"id", "label", "suggested", "score"}


def test_metrics_of_the_fixture_by_slice_and_without_embeddings(
    cli_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    build_browse_fixture(cli_engine)
    ads = '[{"kind": "attribute", "attribute": "channel", "op": "equals", "values": ["ads"]}]'
    assert run(capsys, "slices", "save", "--project", "browse", "--name", "ads", "--filter", ads)[0] == 0
    code, out, err = run(capsys, "metrics", "--project", "browse", "--task", "spam", "--slice", "ads", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["records"] == 3
    assert data["confusion"]["labels"] == ["spam", "ham"]
    assert data["confusion"]["matrix"] == [[1, 0], [2, 0]]
    assert data["distribution"] == {"manual": {"spam": 1, "ham": 2}, "weak_supervision": {"spam": 3, "ham": 0}}
    # Heuristic statistics of the slice only: h1's ham vote is on r5, outside the slice.
    hits = {(h["heuristic"], h["label"]): h["coverage"] for h in data["heuristics"]}
    assert hits == {("h1", "spam"): 2, ("h2", "ham"): 1, ("h2", "spam"): 2}
    assert data["progress_share"]["labeled manually"] == 1.0
    assert data["label_errors"] == []
    assert "loupe embed" in data["label_errors_note"]
    code, out, _ = run(capsys, "metrics", "--project", "browse", "--task", "spam", "--no-label-errors")
    assert code == 0 and "Confusion matrix" in out and "spam" in out


def test_browse_and_slices_commands(cli_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    build_browse_fixture(cli_engine)
    code, out, _ = run(capsys, "browse", "--project", "browse", "--preset", "low_confidence", "--task", "spam",
                       "--json")
    assert code == 0
    page = json.loads(out)
    assert page["total"] == 2
    assert [r["key"] for r in page["rows"]] == ["r5", "r2"]
    assert page["rows"][0]["spam: confidence"] == 0.4
    code, out, _ = run(capsys, "browse", "--project", "browse", "--sort", "attribute:length", "--descending",
                       "--limit", "2", "--json")
    assert [r["key"] for r in json.loads(out)["rows"]] == ["r3", "r5"]
    assert run(capsys, "slices", "save", "--project", "browse", "--name", "todo", "--preset", "unlabeled_random",
               "--task", "spam", "--static")[1] == "Saved static slice 'todo': 2 record(s) now.\n"
    assert run(capsys, "slices", "rename", "--project", "browse", "--name", "todo", "--to", "later")[0] == 0
    code, out, _ = run(capsys, "slices", "list", "--project", "browse", "--json")
    assert [(s["name"], s["kind"], s["records"]) for s in json.loads(out)] == [("later", "static", 2)]
    assert run(capsys, "slices", "delete", "--project", "browse", "--name", "later")[0] == 0
    code, _, err = run(capsys, "slices", "delete", "--project", "browse", "--name", "later")
    assert code == 1 and err.startswith("error: No data slice named 'later'")
    code, _, err = run(capsys, "browse", "--project", "browse", "--filter", "{oops")
    assert code == 1 and "not valid JSON" in err
