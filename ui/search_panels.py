"""Parts of the Search page: the embeddings bar, semantic search, find similar and outliers.

What the user asked for (a query, a record id) is kept under plain session keys, not
only in the widgets: a widget's state is dropped when the user leaves the page, and
coming back from Labeling should show the same results.
"""

from __future__ import annotations

from functools import partial

import streamlit as st
from sqlalchemy.engine import Engine

from core.embeddings import DEFAULT_MODEL, canonical_model_name, embed_attribute
from core.errors import LoupeError
from core.index import IndexStatus
from core.search import DEFAULT_K, MAX_K, OUTLIER_SLICE, find_outliers, save_outliers
from core.store import session_scope
from core.store.browse import ProjectRef
from core.store.projects import bump_revision
from ui import background
from ui import search_data as data
from ui.feedback import flash, show_error
from ui.resources import database_url, engine
from ui.similar import results_grid
from ui.text import escape_markdown

ANY_TASK = 0
STATUS = {
    IndexStatus.FRESH: ("green", "search index fresh"),
    IndexStatus.STALE: ("orange", "search index stale"),
    IndexStatus.MISSING: ("red", "search index missing"),
}
_AUTO_REBUILT = "search.index.auto"  # the spaces (id, revision, count) whose rebuild this session started itself


def _embed_job(ref: ProjectRef) -> tuple[str, str, int]:
    return ("embed", database_url(), ref.id)


def _index_job(space: data.Space) -> tuple[str, str, int]:
    return ("index", database_url(), space.id)


def embeddings_bar(ref: ProjectRef, texts: list[str], spaces: list[data.Space]) -> data.Space | None:
    """Pick the text attribute and the model; embed (in the background); see the index status."""
    attr_col, model_col, button_col = st.columns([2, 3, 1], vertical_alignment="bottom")
    attribute = attr_col.selectbox("Text attribute", texts, key="search.attribute")
    models = list(dict.fromkeys([*(s.model for s in spaces if s.attribute == attribute), DEFAULT_MODEL,
                                 *(s.model for s in spaces)]))
    model = model_col.selectbox(
        "Model", models, key=f"search.model.{attribute}", accept_new_options=True,
        help=f"{DEFAULT_MODEL} comes with Loupe. Type the path of a sentence-transformers model directory, "
             "or the name of a model in the Hugging Face cache, to use another one.")
    try:
        model = canonical_model_name(model or DEFAULT_MODEL)
    except LoupeError as e:
        show_error(e)
        return None
    space = next((s for s in spaces if s.attribute == attribute and s.model == model), None)
    job_key = _embed_job(ref)
    running = background.running(job_key)
    behind = data.pending(database_url(), ref.id, ref.revision, space) if space and not running else None
    outdated = behind is not None and behind.total > 0
    if button_col.button("Update" if space else "Embed", type="primary" if not space or outdated else "secondary",
                         icon=":material/memory:", key="search.embed", disabled=running, width="stretch",
                         help="Encodes only texts that are new or changed since the last run."):
        background.start(job_key, label=f"Embedding {attribute} with {model}…", unit="new or changed texts encoded",
                         work=partial(_embed, engine(), ref.name, attribute, model))
        st.rerun()
    if background.current(job_key) is not None:
        background.progress_panel(job_key, waiting="loading the model and reading the records")
    elif behind is not None and outdated:
        parts = [f"{n:,} {what}" for n, what in ((behind.new, "new"), (behind.changed, "changed")) if n]
        st.warning(f"**{behind.total:,} records new or changed** since the last embedding run ({', '.join(parts)}): "
                   "searches do not see their current text until you **Update** the embeddings. Only texts that "
                   "differ are encoded again.", icon=":material/update:")
    if space is None:
        st.info(f"“{escape_markdown(attribute)}” has no embeddings with this model yet: **Embed** it to search by "
                "meaning, find similar records and outliers, and draw the map.", icon=":material/info:")
        return None
    return space


def index_line(ref: ProjectRef, space: data.Space) -> bool:
    """How many records are embedded and whether the search index is fresh; returns whether it is being rebuilt.

    A missing or stale index is rebuilt in the background as soon as the page sees it (once per session
    and state of the embeddings; if that fails, a button tries again), so the page stays usable meanwhile.
    """
    job_key = _index_job(space)
    rebuilding = background.running(job_key)
    status = IndexStatus.FRESH if rebuilding else data.status(space)
    tried: set[tuple[int, int, int]] = st.session_state.setdefault(_AUTO_REBUILT, set())
    attempt = (space.id, space.revision, space.count)
    if status is not IndexStatus.FRESH and attempt not in tried and not background.running(_embed_job(ref)):
        tried.add(attempt)
        _start_rebuild(space)
        rebuilding = background.running(job_key)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**{space.count:,}** records embedded")
        if rebuilding:
            st.badge("rebuilding the search index…", color="blue", icon=":material/sync:")
        else:
            color, text = STATUS[status]
            st.badge(text, color=color, icon=":material/database:")  # type: ignore[arg-type]
            if status is not IndexStatus.FRESH and st.button("Rebuild index", key="search.rebuild",
                                                             icon=":material/refresh:", type="tertiary"):
                _start_rebuild(space)
                st.rerun()
    return rebuilding


def index_progress(space: data.Space) -> None:
    """The progress of the index rebuild, if one is going on.

    The page calls this after the tabs (into a container above them): a rebuild that ends reruns the page,
    and a search submitted in the same run must have been taken in by then.
    """
    if background.current(_index_job(space)) is not None:
        background.progress_panel(_index_job(space), waiting="reading the stored vectors",
                                  stored="searches run once it is done")


def _start_rebuild(space: data.Space) -> None:
    background.start(_index_job(space), label=f"Rebuilding the search index of {space.label}…",
                     unit="records indexed", work=partial(_rebuild, engine(), space))


def _rebuild(store: Engine, space: data.Space, progress: background.Reporter) -> str | tuple[str, str]:
    # Runs in a background thread: no Streamlit call in here.
    items = data.rebuild(store, space, progress)
    if items is None:
        return f"The search index of {space.label} is up to date.", "info"
    return f"Rebuilt the search index of {space.label}: {items:,} records."


def _embed(store: Engine, project: str, attribute: str, model: str, progress: background.Reporter) -> str:
    # Runs in a background thread: no Streamlit call in here.
    result = embed_attribute(store, project=project, attribute=attribute, model=model, progress=progress,
                             index_progress=progress.step("Updating the search index…", unit="records written"))
    return result.summary() + (f" Search index {result.index}." if result.index else "")


def _wait_for_index(what: str) -> None:
    st.info(f"The search index is being rebuilt (progress above); {what} as soon as it is done.",
            icon=":material/hourglass_top:")


def _asked(state_key: str, widget_key: str, label: str, *, placeholder: str, button: str,
           icon: str) -> tuple[str, int]:
    """A one-line form (text, number of results); the submitted values stay in ``st.session_state[state_key]``."""
    saved_text, saved_k = st.session_state.get(state_key, ("", DEFAULT_K))
    with st.form(f"{widget_key}.form", border=False):
        text_col, k_col, button_col = st.columns([5, 1, 1], vertical_alignment="bottom")
        text = text_col.text_input(label, value=saved_text, placeholder=placeholder, key=f"{widget_key}.text")
        k = k_col.number_input("Results", min_value=1, max_value=MAX_K, value=int(saved_k), key=f"{widget_key}.k")
        if button_col.form_submit_button(button, type="primary", icon=icon, width="stretch"):
            st.session_state[state_key] = (text.strip(), int(k))
    return st.session_state.get(state_key, ("", DEFAULT_K))


def semantic_tab(ref: ProjectRef, space: data.Space, *, rebuilding: bool = False) -> None:
    query, k = _asked("search.semantic", "search.semantic", "What are you looking for?", button="Search",
                      placeholder="e.g. records about refunds", icon=":material/search:")
    if not query:
        st.caption("Finds records close in meaning to your words, even when they share none of them.")
        return
    if rebuilding:
        _wait_for_index("your search runs")
        return
    try:
        with st.spinner("Loading the model…"):
            data.model(space.model)
        with st.spinner("Searching…"):
            frame = data.semantic(database_url(), ref.id, ref.revision, space, query, k)
    except LoupeError as e:
        show_error(e)
        return
    results_grid(frame, key=f"search.semantic.grid.{space.id}.{hash((query, k))}",
                 what=f"records closest to “{query}”")


def similar_tab(ref: ProjectRef, space: data.Space, *, rebuilding: bool = False) -> None:
    key, k = _asked("search.similar", "search.similar", "Record id", button="Find similar",
                    placeholder="primary-key value or running id, as on the Data page", icon=":material/manage_search:")
    if not key:
        st.caption("Lists the records most similar in meaning to one record (itself left out).")
        return
    if rebuilding:
        _wait_for_index("the similar records show")
        return
    try:
        with st.spinner("Searching…"):
            frame = data.similar(database_url(), ref.id, ref.revision, space, key, k)
    except LoupeError as e:
        show_error(e)
        return
    results_grid(frame, key=f"search.similar.grid.{space.id}.{hash((key, k))}", what=f"records similar to {key}")


def outliers_tab(ref: ProjectRef, space: data.Space, tasks: list[data.Task]) -> None:
    names = {ANY_TASK: "labeled for any task", **{t.id: f"labeled for “{t.name}”" for t in tasks}}
    task_col, limit_col, button_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    task_id = task_col.selectbox("Compare unlabeled records with the records", list(names), format_func=names.get,
                                 key="search.outliers.task")
    limit = limit_col.number_input("At most", min_value=1, max_value=1000, value=100, key="search.outliers.limit")
    if button_col.button("Find outliers", type="primary", icon=":material/scatter_plot:", width="stretch",
                         key="search.outliers.run"):
        task = next((t.name for t in tasks if t.id == task_id), None)
        try:
            with st.spinner("Scoring the unlabeled records…"), session_scope(engine()) as session:
                hits = find_outliers(session, project_id=ref.id, attribute=space.attribute, model=space.model,
                                     task=task, limit=int(limit))
                save_outliers(session, project_id=ref.id, hits=hits)
                bump_revision(session, ref.id)
        except LoupeError as e:
            show_error(e)
        else:
            flash(f"Saved {len(hits)} outlier(s) as the data slice “{OUTLIER_SLICE}”." if hits
                  else "Every embedded record is labeled: no outlier to look for.")
            st.rerun()
    frame = data.outliers(database_url(), ref.id, ref.revision, OUTLIER_SLICE, space.attribute)
    if frame is None:
        st.caption("Outliers are unlabeled records far from the labeled ones (or from the others, when nothing is "
                   "labeled yet): look at them first. They are saved as a data slice for the Data and Labeling pages.")
        return
    st.markdown(f"**Data slice “{OUTLIER_SLICE}”** · score = mean distance to the labeled records, farthest first")
    results_grid(frame, key=f"search.outliers.grid.{ref.revision}", what="outliers")
