"""Labelbox Export v2 NDJSON: the shape of seed 001's sample, params, filters and workflow status."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.exporters import ExportOptions, LabelboxFilters, LabelboxParams, export_project, parse_range
from tests.fixtures_export import LabeledDemo, labeled_demo

# Seed 001's sample project export, trimmed to one label with one answer of each kind.
SEED_SAMPLE: dict[str, Any] = {
    "data_row": {
        "id": "clpvnouh04uyy0723mmru42qn",
        "global_key": "clpvnou2v03js07xsghfo2nzc",
        "row_data": "{\"type\":\"application/llm.prompt-response-creation\",\"version\":1}",
        "details": {
            "dataset_id": "clpvnou0z004c0724pd4cmw8g",
            "dataset_name": "test-humans-generate-prompts-reponses-dataset",
            "created_at": "2023-12-07T20:34:06.540+00:00",
            "updated_at": "2023-12-07T20:34:06.815+00:00",
            "last_activity_at": "2024-04-10T15:21:31.000+00:00",
            "created_by": "[email protected]",
        },
    },
    "media_attributes": {"mime_type": "application/llm.prompt-response-creation"},
    "attachments": [],
    "metadata_fields": [],
    "projects": {
        "clpvnotzb03jo07xs48r7ewka": {
            "name": "Andrea-test-humans-generate-prompts-responses",
            "labels": [{
                "label_kind": "Default",
                "version": "1.0.0",
                "id": "clutyida4041a07h4a8ojbu1g",
                "label_details": {
                    "created_at": "2024-04-10T15:21:31.000+00:00",
                    "updated_at": "2024-04-10T15:21:31.000+00:00",
                    "created_by": "[email protected]",
                    "content_last_updated_at": "2024-04-10T15:21:31.137+00:00",
                    "reviews": [],
                },
                "performance_details": {"seconds_to_create": 28, "seconds_to_review": 0, "skipped": False},
                "annotations": {
                    "objects": [],
                    "classifications": [{
                        "feature_id": "clutykap700033b6rmmlkpo6u",
                        "feature_schema_id": "clutyjef000xm07wf5ym80ud6",
                        "name": "Yes",
                        "value": "yes",
                        "radio_answer": {
                            "feature_id": "clutykap700023b6rhktauyzc",
                            "feature_schema_id": "clutyjef000xn07wf6smvc54b",
                            "name": "Red shirt",
                            "value": "red_shirt",
                            "classifications": [],
                        },
                    }],
                    "relationships": [],
                },
            }],
            "project_details": {
                "ontology_id": "clpvnqsqz01kv07zydvbscxzq",
                "task_id": "14b02ec0-71f3-4d1f-b720-c6318e9a9346",
                "task_name": "Initial review task",
                "batch_id": "00870bc0-9540-11ee-a202-8d3b90bd1707",
                "batch_name": "batch_clpvnotzb03jo07xs48r7ewka",
                "workflow_status": "IN_REVIEW",
                "priority": 5,
                "consensus_expected_label_count": 2,
                "workflow_history": [{
                    "action": "Move",
                    "created_at": "2024-04-10T15:21:31.517+00:00",
                    "created_by": "[email protected]",
                    "previous_task_name": "Initial labeling task",
                    "previous_task_id": "1d0062f9-dfd9-0f86-baed-823235868a8c",
                    "next_task_name": "Initial review task",
                    "next_task_id": "14b02ec0-71f3-4d1f-b720-c6318e9a9346",
                }],
            },
        }
    },
}
# Seed 001/002's checklist answer.
SEED_CHECKLIST = {"feature_id": "…", "feature_schema_id": "…", "name": "Evaluations done",
                  "checklist_answers": [{"feature_id": "…", "name": "Usefulness", "classifications": []}]}
LB_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    return labeled_demo(engine)


def export_rows(engine: Engine, project: str, tmp_path: Path, **options: Any) -> list[dict[str, Any]]:
    out = tmp_path / "lb.ndjson"
    export_project(engine, project=project, options=ExportOptions(format="labelbox", **options), out=out)
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def project_of(row: dict[str, Any]) -> dict[str, Any]:
    (project,) = row["projects"].values()
    return dict(project)


def test_data_rows_have_the_seed_sample_shape_key_by_key(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    rows = export_rows(engine, demo.name, tmp_path)
    assert len(rows) == 1956
    row = rows[0]
    seed_project = next(iter(SEED_SAMPLE["projects"].values()))
    assert list(row) == list(SEED_SAMPLE)
    assert list(row["data_row"]) == list(SEED_SAMPLE["data_row"])
    assert list(row["data_row"]["details"]) == list(SEED_SAMPLE["data_row"]["details"])
    assert row["data_row"]["global_key"] == demo.keys[0]
    assert row["data_row"]["row_data"].startswith("Huh, anyway check out")
    assert [m["schema_name"] for m in row["metadata_fields"]] == ["AUTHOR", "DATE", "VIDEO", "COMMENT_ID"]
    project = project_of(row)
    assert list(project) == list(seed_project)
    label = next(lb for lb in project["labels"] if lb["label_details"]["created_by"] == "alice")
    seed_label = seed_project["labels"][0]
    assert list(label) == list(seed_label)
    assert list(label["label_details"]) == list(seed_label["label_details"])
    assert list(label["performance_details"]) == list(seed_label["performance_details"])
    assert list(label["annotations"]) == list(seed_label["annotations"])
    assert list(project["project_details"]) == list(seed_project["project_details"])
    for stamp in (row["data_row"]["details"]["created_at"], label["label_details"]["created_at"]):
        assert LB_TIME.match(stamp), stamp
    # radio (single label), checklist (multi-label) and text entities (spans).
    by_name = {c["name"]: c for c in label["annotations"]["classifications"]}
    seed_radio = seed_label["annotations"]["classifications"][0]
    assert list(by_name["spam"]) == list(seed_radio)
    assert list(by_name["spam"]["radio_answer"]) == list(seed_radio["radio_answer"])
    assert by_name["spam"]["radio_answer"]["name"] == "spam"
    assert set(by_name["topics"]) == set(SEED_CHECKLIST) | {"value"}
    assert [a["name"] for a in by_name["topics"]["checklist_answers"]] == ["music", "promo"]
    assert set(by_name["topics"]["checklist_answers"][0]) == {"feature_id", "feature_schema_id", "name", "value",
                                                              "classifications"}
    text = row["data_row"]["row_data"]
    for entity in label["annotations"]["objects"]:
        assert entity["annotation_kind"] == "TextEntity"
        location = entity["location"]
        assert text[location["start"] : location["end"] + 1] == location["token"]  # end inclusive, as Labelbox
    assert sorted(e["name"] for e in label["annotations"]["objects"]) == ["CHANNEL", "LINK"]
    assert label["performance_details"] == {"seconds_to_create": 4, "seconds_to_review": 2, "skipped": False}
    assert label["label_details"]["reviews"][0]["review_action"] == "Approve"
    assert label["label_details"]["reviews"][0]["created_by"] == "carol"


def test_workflow_status_and_history(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    rows = {r["data_row"]["global_key"]: project_of(r)["project_details"] for r in export_rows(engine, demo.name,
                                                                                               tmp_path)}
    a, b, c, d = demo.keys[:4]
    # Several tasks: the least finished one decides. a's spam task is done; its other tasks are labeled.
    assert rows[a]["workflow_status"] == "DONE"
    assert rows[c]["workflow_status"] == "IN_REWORK"
    assert rows[demo.keys[10]]["workflow_status"] == "TO_LABEL"
    history = rows[a]["workflow_history"]
    assert [(h["previous_task_id"], h["next_task_id"]) for h in history] == [("in_review", "done"),
                                                                             ("labeled", "in_review")]
    assert history[0]["action"] == "Approve" and history[0]["created_by"] == "carol"
    assert set(history[0]) >= set(next(iter(SEED_SAMPLE["projects"].values()))["project_details"]
                                   ["workflow_history"][0])
    one_task = {r["data_row"]["global_key"]: project_of(r)["project_details"]["workflow_status"]
                for r in export_rows(engine, demo.name, tmp_path, tasks=("spam",))}
    assert one_task[b] == "DONE"  # labeled, never sent to review: done (review is optional in Loupe)
    assert one_task[d] == "TO_LABEL"


def test_params_leave_blocks_out(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    params = LabelboxParams(attachments=False, metadata_fields=False, data_row_details=False, project_details=False,
                            label_details=False, performance_details=False)
    row = export_rows(engine, demo.name, tmp_path, labelbox_params=params)[0]
    assert list(row) == ["data_row", "media_attributes", "projects"]
    assert list(row["data_row"]) == ["id", "global_key", "row_data"]
    project = project_of(row)
    assert list(project) == ["name", "labels"]
    assert list(project["labels"][0]) == ["label_kind", "version", "id", "annotations"]


def test_filters_combine_with_and(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    def keys(**filters: Any) -> list[str]:
        rows = export_rows(engine, demo.name, tmp_path, tasks=("spam",), labelbox_filters=LabelboxFilters(**filters))
        return [r["data_row"]["global_key"] for r in rows]

    today = datetime.now(UTC).date().isoformat()
    assert len(keys(last_activity_at=parse_range("2000-01-01", "2050-01-01 00:00:00"))) == 1956
    assert keys(last_activity_at=parse_range(None, "2000-01-01")) == []
    labeled = keys(label_created_at=parse_range(today, today))
    assert demo.keys[0] in labeled and 190 < len(labeled) < 1956  # records with a manual label only
    assert keys(workflow_status="IN_REWORK") == [demo.keys[2]]
    assert keys(workflow_status="IN_REWORK", label_created_at=parse_range(None, "2001-01-01")) == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert keys(label_created_at=parse_range(tomorrow, None)) == []
