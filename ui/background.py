"""Long work in a background thread, so the page stays usable and a rerun does not cut it short.

Heuristic runs, embedding, search-index rebuilds and learner training use it. The work runs in a thread of the server
process (core code only, no Streamlit calls), reports its progress into a registry shared
by all sessions (``st.cache_resource``) and stores its result in the database. A refresh,
or leaving the page and coming back, shows the same progress; the page shows it in a
fragment that refreshes itself every second and reruns the whole page once the work ends,
with its report as a flash message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import streamlit as st

from core.errors import LoupeError
from ui.feedback import flash

Progress = Callable[[int, int], None]


@dataclass
class Job:
    label: str
    unit: str
    done: int = 0
    total: int = 0
    finished: bool = False
    message: str = ""
    kind: str = "success"


class Reporter:
    """What the work is given: call it as ``progress(done, total)``; :meth:`step` reports a later step."""

    def __init__(self, job: Job) -> None:
        self._job = job

    def __call__(self, done: int, total: int) -> None:
        self._job.done, self._job.total = done, total

    def step(self, label: str, *, unit: str) -> Progress:
        """A reporter for the next step of the work: from its first report on, the bar says ``label``
        and counts ``unit`` (e.g. encoding texts, then writing them to the search index)."""

        def report(done: int, total: int) -> None:
            self._job.label, self._job.unit = label, unit
            self(done, total)

        return report


# The work: given a progress reporter, do it and return the message to show when it is done,
# or (message, kind) with kind "success", "info" or "warning".
Work = Callable[[Reporter], str | tuple[str, str]]


@dataclass
class _Registry:
    jobs: dict[Hashable, Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def current(key: Hashable) -> Job | None:
    return _registry().jobs.get(key)


def running(key: Hashable) -> bool:
    job = current(key)
    return job is not None and not job.finished


def start(key: Hashable, *, label: str, work: Work, unit: str = "items") -> bool:
    """Run ``work`` in the background under ``key``; False when work of that key is going on already.

    Parameters
    ----------
    key
        Identifies the work (include the database URL and the project id).
    label
        What the progress bar says, e.g. "Embedding text…".
    unit
        What ``progress(done, total)`` counts, for the progress text.
    """
    registry = _registry()
    with registry.lock:
        if running(key):
            return False
        job = registry.jobs[key] = Job(label=label, unit=unit)
    progress = Reporter(job)

    def run() -> None:
        try:
            outcome = work(progress)
            job.message, job.kind = outcome if isinstance(outcome, tuple) else (outcome, "success")
        except LoupeError as e:
            job.message, job.kind = str(e), "warning"
        except Exception as e:  # a thread's exception would vanish: keep it for the page to show
            job.message, job.kind = f"{label.rstrip('…')} stopped: {type(e).__name__}: {e}", "warning"
        finally:
            job.finished = True

    threading.Thread(target=run, name=f"loupe-{label[:30]}", daemon=True).start()
    return True


@st.fragment(run_every=1.0)
def progress_panel(key: Hashable, *, waiting: str = "starting",
                   stored: str = "the result is stored when it is done") -> None:
    """While the work goes on: its progress; when it ends: its report, and the page reruns with the results."""
    registry = _registry()
    job = registry.jobs.get(key)
    if job is None:
        return
    if job.finished:
        with registry.lock:
            registry.jobs.pop(key, None)
        flash(job.message, kind=job.kind)  # type: ignore[arg-type]
        st.rerun(scope="app")
    counts = f"{job.done:,} of {job.total:,} {job.unit}" if job.total else waiting
    st.progress(min(job.done / job.total, 1.0) if job.total else 0.0,
                text=f"{job.label} {counts} (you can keep working; {stored})")
