"""Heuristic runs in the background (:mod:`ui.background`), so the page stays usable while they run.

A Streamlit script run is stopped by the next widget interaction; a run of many labeling
functions must not be. Each heuristic's votes are stored as soon as it finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from core.heuristics import RunOutcome, run_heuristics
from ui import background
from ui.resources import database_url, engine

Report = Callable[[list[RunOutcome]], tuple[str, str]]


def key(project_id: int, task_id: int) -> Hashable:
    return ("heuristics", database_url(), project_id, task_id)


def current(job_key: Hashable) -> background.Job | None:
    return background.current(job_key)


def running(job_key: Hashable) -> bool:
    return background.running(job_key)


def start(job_key: Hashable, *, heuristic_ids: list[int] | None, report: Report) -> bool:
    """Start running heuristics of a task; False when a run of that task is going on already."""
    store = engine()
    _, _, project_id, task_id = job_key  # type: ignore[misc]

    def work(progress: background.Progress) -> tuple[str, str]:
        outcomes = run_heuristics(store, project_id=project_id, task_id=task_id, heuristic_ids=heuristic_ids,
                                  progress=progress)
        return report(outcomes)

    return background.start(job_key, label="Running heuristics…", work=work, unit="record × heuristic runs")


def progress_panel(job_key: Hashable) -> None:
    background.progress_panel(job_key, waiting="reading the records",
                              stored="each heuristic's votes are stored as soon as it finishes")
