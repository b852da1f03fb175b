"""Label Studio export: task, annotation, prediction and result shapes (REFERENCE.md), and the config XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.errors import ValidationError
from core.exporters import ExportOptions, export_project, labelstudio_config
from core.store import session_scope
from core.store.projects import get_project
from core.store.tasks import create_task
from tests.fixtures_export import LabeledDemo, labeled_demo

ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    return labeled_demo(engine)


@pytest.fixture()
def tasks(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "ls.json"
    options = ExportOptions(format="labelstudio", sources=("MANUAL", "WEAK_SUPERVISION", "HEURISTIC", "MODEL"))
    export_project(engine, project=demo.name, options=options, out=out)
    return list(json.loads(out.read_text(encoding="utf-8")))


def test_task_shape(tasks: list[dict[str, Any]]) -> None:
    assert len(tasks) == 1956
    first = tasks[0]
    assert list(first) == ["id", "data", "annotations", "predictions", "created_at", "updated_at"]
    assert first["id"] == 1
    assert list(first["data"]) == ["CONTENT", "AUTHOR", "DATE", "VIDEO", "COMMENT_ID"]
    assert first["created_at"].endswith("Z")
    annotation = first["annotations"][0]
    assert set(annotation) == {"id", "completed_by", "result", "was_cancelled", "ground_truth", "created_at",
                               "updated_at", "lead_time"}
    assert annotation["was_cancelled"] is False


def test_annotations_per_annotator_with_gold_and_lead_time(tasks: list[dict[str, Any]]) -> None:
    by_user = {a["completed_by"]["username"]: a for a in tasks[0]["annotations"]}
    assert set(by_user) == {"alice", "bob"}
    alice = by_user["alice"]
    assert alice["lead_time"] == 4.5
    results = {(r["from_name"], r["type"]): r for r in alice["result"]}
    assert results[("spam", "choices")]["value"] == {"choices": ["spam"]}
    assert results[("spam", "choices")]["to_name"] == "CONTENT"
    assert results[("topics", "choices")]["value"] == {"choices": ["music", "promo"]}
    spans = [r for r in alice["result"] if r["type"] == "labels"]
    text = tasks[0]["data"]["CONTENT"]
    for span in spans:
        assert set(span) == {"id", "from_name", "to_name", "type", "value"}
        assert span["from_name"] == "entities" and span["to_name"] == "CONTENT"
        value = span["value"]
        assert set(value) == {"start", "end", "text", "labels"}
        assert value["text"] == text[value["start"] : value["end"]]  # character offsets, end exclusive
    assert sorted(s["value"]["labels"][0] for s in spans) == ["CHANNEL", "LINK"]
    gold = {a["completed_by"]["username"]: a["ground_truth"] for a in tasks[2]["annotations"]}
    assert gold["alice"] is True and gold["bob"] is False


def test_predictions_carry_scores(tasks: list[dict[str, Any]]) -> None:
    predictions = {p["model_version"]: p for p in tasks[0]["predictions"]}
    assert set(predictions) == {"weak_supervision", "heuristic:has_link"}
    ws = predictions["weak_supervision"]
    assert set(ws) == {"id", "model_version", "score", "result", "created_at"}
    choice = next(r for r in ws["result"] if r["type"] == "choices")
    assert choice["value"] == {"choices": ["ham"]} and choice["score"] == 0.6
    span = next(r for r in ws["result"] if r["type"] == "labels")
    assert span["score"] == 0.83 and span["value"]["labels"] == ["LINK"]
    assert ws["score"] == pytest.approx((0.6 + 0.83) / 2)
    assert predictions["heuristic:has_link"]["score"] is None
    model = {p["model_version"]: p for p in tasks[5]["predictions"]}["zero-shot"]
    assert model["score"] == 0.91


def test_labeling_config_matches_the_tasks(engine: Engine, demo: LabeledDemo) -> None:
    xml = labelstudio_config(engine, project=demo.name)
    root = ET.fromstring(xml)
    assert root.tag == "View"
    texts = {t.get("name"): t.get("value") for t in root.iter("Text")}
    assert texts == {"CONTENT": "$CONTENT"}
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert choices["spam"].get("toName") == "CONTENT" and choices["spam"].get("choice") == "single-radio"
    assert [c.get("value") for c in choices["spam"].iter("Choice")] == ["spam", "ham"]
    assert choices["topics"].get("choice") == "multiple"
    labels = {lab.get("name"): lab for lab in root.iter("Labels")}
    assert labels["entities"].get("toName") == "CONTENT"
    assert [(x.get("value"), x.get("background")) for x in labels["entities"].iter("Label")] == [
        ("LINK", "#4E79A7"), ("CHANNEL", "#F28E2B")
    ]
    # Hotkeys repeat across tasks (1, 2, … per task): only those unique in the config are kept.
    keys = [x.get("hotkey") for x in root.iter() if x.get("hotkey")]
    assert keys == ["3"] and len(set(keys)) == len(keys)


def test_labeling_config_refuses_a_task_named_like_an_attribute(engine: Engine, demo: LabeledDemo) -> None:
    with session_scope(engine) as session:
        create_task(session, project=get_project(session, demo.name), name="CONTENT", kind="classification",
                    labels=["x"])
    with pytest.raises(ValidationError, match="'CONTENT' names both an attribute and a task"):
        labelstudio_config(engine, project=demo.name)
