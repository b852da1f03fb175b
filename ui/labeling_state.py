"""UI state of the labeling and review pages: the annotator, the queue snapshot, the position, the clock.

Only where the user is lives here; every label is in the database. A queue is
a snapshot of record ids taken when its settings change, so labeling a record
does not reshuffle what comes next; a refresh builds it again from the
database (labeled records are then no longer in an "unlabeled" queue).

Other pages open a record here through :data:`ui.resources.OPEN_RECORD_KEY`
(:func:`ui.similar.open_in_labeling`): :func:`open_requested` makes that record the
current one, once an annotator is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import streamlit as st

from core.labeling import get_or_create_annotator, run_write
from core.store import session_scope
from core.store.records import get_record
from ui.resources import OPEN_RECORD_KEY, engine

ANNOTATOR_KEY = "labeling.annotator"  # shared by the labeling and review pages: one identity per session
_ANNOTATOR_ID_KEY = "labeling.annotator_id"


def annotator_id(name: str) -> int:
    """The id of the annotator ``name`` (created on first use), remembered for the session."""
    cached = st.session_state.get(_ANNOTATOR_ID_KEY)
    if cached and cached[0] == name:
        return int(cached[1])
    who = run_write(engine(), lambda s: get_or_create_annotator(s, name).id or 0)
    st.session_state[_ANNOTATOR_ID_KEY] = (name, who)
    return who


class Queue:
    """A queue snapshot in ``st.session_state[key]``: ids, position, and when the current item was shown."""

    def __init__(self, key: str) -> None:
        self.key = key

    @property
    def _state(self) -> dict[str, Any]:
        return st.session_state.setdefault(self.key, {"settings": None, "ids": [], "pos": 0, "shown": None})

    def ensure(self, settings: Hashable, build: Callable[[], Sequence[Any]]) -> None:
        """Take a fresh snapshot when ``settings`` differ from the last one's."""
        if self._state["settings"] != settings:
            self.reset(settings, build())

    def reset(self, settings: Hashable, ids: Sequence[Any]) -> None:
        st.session_state[self.key] = {"settings": settings, "ids": list(ids), "pos": 0, "shown": None}

    def rebuild(self) -> None:
        """Forget the snapshot; the next ``ensure`` builds it again."""
        self._state["settings"] = None

    @property
    def ids(self) -> list[Any]:
        return list(self._state["ids"])

    @property
    def pos(self) -> int:
        return int(self._state["pos"])

    def current(self) -> Any | None:
        ids, pos = self._state["ids"], self._state["pos"]
        return ids[pos] if 0 <= pos < len(ids) else None

    def put_current(self, item: Any) -> None:
        """Show ``item`` now, in or out of the queue: it moves (or is added) to the current position."""
        state = self._state
        ids = state["ids"]
        if item in ids:
            where = ids.index(item)
            ids.pop(where)
            if where < state["pos"]:
                state["pos"] -= 1
        ids.insert(state["pos"], item)

    def move(self, delta: int) -> None:
        state = self._state
        state["pos"] = max(0, min(len(state["ids"]), state["pos"] + delta))

    def skip(self) -> None:
        """Put the current item at the end of the queue (it comes back after the others)."""
        state = self._state
        if 0 <= state["pos"] < len(state["ids"]) - 1:
            state["ids"].append(state["ids"].pop(state["pos"]))

    def seconds_on_current(self) -> float:
        """Seconds since the current item was first shown (the clock restarts when the item changes)."""
        state, item = self._state, self.current()
        shown = state.get("shown")
        if shown is None or shown[0] != item:
            state["shown"] = (item, time.monotonic())
            return 0.0
        return round(time.monotonic() - shown[1], 2)


def requested_record() -> str | None:
    """The key of the record another page asked to open, still pending (it opens once someone labels)."""
    key = st.session_state.get(OPEN_RECORD_KEY)
    return None if key is None else str(key)


def open_requested(queue: Queue, *, project_id: int) -> str | None:
    """Make the requested record (if any) the queue's current one; returns its key.

    The request is used up even when the key is unknown, so a bad key is reported once.
    Raises :class:`~core.errors.NotFoundError` when the project has no record with that key.
    """
    key = st.session_state.pop(OPEN_RECORD_KEY, None)
    if key is None:
        return None
    with session_scope(engine()) as session:
        record_id = get_record(session, project_id=project_id, key=str(key)).id
    queue.put_current(record_id)
    return str(key)
