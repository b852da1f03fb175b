"""Heuristic runs in a background thread, so the page stays usable while they run.

A Streamlit script run is stopped by the next widget interaction; a run of many labeling
functions must not be. The work runs in a thread of the server process (core code only,
no Streamlit calls), reports progress into a small registry shared by all sessions
(``st.cache_resource``), and stores each heuristic's votes as it finishes. The page shows
the progress in a fragment that refreshes itself every second, and reruns the whole page
once the run is over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from core.errors import LoupeError
from core.heuristics import RunOutcome, run_heuristics
from ui.feedback import flash
from ui.resources import database_url, engine

Key = tuple[str, int, int]  # database URL, project id, task id


@dataclass
class Job:
    label: str
    done: int = 0
    total: int = 0
    finished: bool = False
    message: str = ""
    kind: str = "success"


@dataclass
class _Registry:
    jobs: dict[Key, Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def key(project_id: int, task_id: int) -> Key:
    return (database_url(), project_id, task_id)


def current(job_key: Key) -> Job | None:
    return _registry().jobs.get(job_key)


def running(job_key: Key) -> bool:
    job = _registry().jobs.get(job_key)
    return job is not None and not job.finished


Report = Callable[[list[RunOutcome]], tuple[str, str]]


def start(job_key: Key, *, heuristic_ids: list[int] | None, report: Report) -> bool:
    """Start running heuristics of a task; False when a run of that task is going on already."""
    registry = _registry()
    with registry.lock:
        if running(job_key):
            return False
        job = registry.jobs[job_key] = Job(label="Running heuristics…")
    store = engine()
    _, project_id, task_id = job_key

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total

    def work() -> None:
        try:
            outcomes = run_heuristics(store, project_id=project_id, task_id=task_id, heuristic_ids=heuristic_ids,
                                      progress=progress)
            job.message, job.kind = report(outcomes)
        except LoupeError as e:
            job.message, job.kind = str(e), "warning"
        except Exception as e:  # a thread's exception would vanish: keep it for the page to show
            job.message, job.kind = f"The run stopped: {type(e).__name__}: {e}", "warning"
        finally:
            job.finished = True

    threading.Thread(target=work, name=f"heuristics-{project_id}-{task_id}", daemon=True).start()
    return True


@st.fragment(run_every=1.0)
def progress_panel(job_key: Key) -> None:
    """While a run is going on: its progress; when it ends: its report, and the page reruns with the results."""
    registry = _registry()
    job = registry.jobs.get(job_key)
    if job is None:
        return
    if job.finished:
        with registry.lock:
            registry.jobs.pop(job_key, None)
        flash(job.message, kind=job.kind)  # type: ignore[arg-type]
        st.rerun(scope="app")
    share = job.done / job.total if job.total else 0.0
    counts = f"{job.done:,} of {job.total:,} record × heuristic runs" if job.total else "reading the records"
    st.progress(min(share, 1.0), text=f"{job.label} {counts} (you can keep working; each heuristic's votes are "
                                      "stored as soon as it finishes)")
