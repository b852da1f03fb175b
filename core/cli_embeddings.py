"""``loupe embed``, ``similar``, ``search``, ``outliers`` and ``index rebuild``: embeddings from the shell.

Records are addressed by their key (primary-key value or running id). ``--json``
prints a list of ``{"id": key, "score": score}``, best first.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.search import SearchHit

# Same values as core.embeddings.DEFAULT_MODEL and core.search.DEFAULT_K; repeated so that
# building the parser does not import numpy, pandas or the model stack.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_K = 10


def _print_hits(hits: Sequence[SearchHit], *, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps([h.as_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        print(f"No {what}.")
        return
    width = max(len(h.key) for h in hits)
    print(f"{'id':<{width}}  score")
    for h in hits:
        print(f"{h.key:<{width}}  {h.score:.4f}")


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A progress reporter writing ``label: done/total`` to stderr (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        if total:
            end = "\n" if done >= total else ""
            print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def cmd_embed(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.embeddings import embed_attribute

    result = embed_attribute(_engine(), project=args.project, attribute=args.attribute, model=args.model,
                             batch_size=args.batch_size, progress=_progress("embedding"),
                             index_progress=_progress("indexing"))
    print(result.summary() + (f" Index {result.index}." if result.index else ""))
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.search import similar_records
    from core.store import session_scope
    from core.store.projects import get_project

    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        hits = similar_records(session, project_id=project.id or 0, key=args.record, attribute=args.attribute,
                               model=args.model, k=args.k)
    _print_hits(hits, as_json=args.json, what="similar records")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.search import semantic_search
    from core.store import session_scope
    from core.store.projects import get_project

    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        hits = semantic_search(session, project_id=project.id or 0, query=args.query, attribute=args.attribute,
                               model=args.model, k=args.k)
    _print_hits(hits, as_json=args.json, what="matching records")
    return 0


def cmd_outliers(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.search import find_outliers, save_outliers
    from core.store import session_scope
    from core.store.projects import bump_revision, get_project

    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        hits = find_outliers(session, project_id=project.id or 0, attribute=args.attribute, model=args.model,
                             task=args.task, limit=args.limit)
        saved = save_outliers(session, project_id=project.id or 0, hits=hits, name=args.slice)
        bump_revision(session, project.id or 0)
    _print_hits(hits, as_json=args.json, what="outliers (every record with an embedding is labeled)")
    if not args.json:
        print(f"Saved {len(hits)} outlier(s) as data slice {saved.name!r}.")
    return 0


def cmd_index_rebuild(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.index import load_chroma_settings, rebuild_project_indexes
    from core.store import session_scope
    from core.store.embeddings import space_label
    from core.store.projects import get_project

    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        rebuilt = rebuild_project_indexes(session, project_id=project.id or 0, progress=_progress("indexing"))
        lines = [f"  {space_label(session, space)}: {count} records" for space, count in rebuilt]
    if not rebuilt:
        print(f"Project {args.project!r} has no embeddings; nothing to index. "
              f"Compute them first: loupe embed --project {args.project!r} --attribute ATTRIBUTE")
        return 0
    print(f"Rebuilt {len(rebuilt)} index(es) of {args.project!r} in the {load_chroma_settings().describe()}:")
    print("\n".join(lines))
    return 0


def _space_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attribute", help="the embedded attribute (needed when the project has several)")
    parser.add_argument("--model", help="the embedding model (needed when an attribute has several)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a positive whole number; got {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number; got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``embed``, ``similar``, ``search``, ``outliers`` and ``index`` to the ``loupe`` subparsers."""
    emb = sub.add_parser("embed", help="embed a text attribute (only new or changed texts are encoded)")
    emb.add_argument("--project", required=True)
    emb.add_argument("--attribute", required=True, help="the TEXT attribute to embed")
    emb.add_argument("--model", default=DEFAULT_MODEL,
                     help=f"sentence-transformers model: name or local directory (default: {DEFAULT_MODEL})")
    emb.add_argument("--batch-size", type=_positive, default=64, help="texts per forward pass (default: 64)")
    emb.set_defaults(handler=cmd_embed)

    sim = sub.add_parser("similar", help="the records most similar to one record (itself excluded)")
    sim.add_argument("--project", required=True)
    sim.add_argument("--record", required=True, help="the record's key: primary-key value or running id")
    sim.add_argument("-k", type=_positive, default=DEFAULT_K, help=f"number of results (default: {DEFAULT_K})")
    _space_options(sim)
    sim.add_argument("--json", action="store_true", help='print [{"id": ..., "score": ...}], best first')
    sim.set_defaults(handler=cmd_similar)

    sea = sub.add_parser("search", help="semantic search: the records closest in meaning to a text")
    sea.add_argument("--project", required=True)
    sea.add_argument("--query", required=True)
    sea.add_argument("-k", type=_positive, default=DEFAULT_K, help=f"number of results (default: {DEFAULT_K})")
    _space_options(sea)
    sea.add_argument("--json", action="store_true", help='print [{"id": ..., "score": ...}], best first')
    sea.set_defaults(handler=cmd_search)

    out = sub.add_parser("outliers", help="unlabeled records far from the labeled ones; saved as a data slice")
    out.add_argument("--project", required=True)
    _space_options(out)
    out.add_argument("--task", help="compare with the records labeled for this task (default: any task)")
    out.add_argument("--limit", type=_positive, default=100, help="at most this many (default: 100; and ≤ 5%%)")
    out.add_argument("--slice", default="outliers", help="name of the saved slice (default: outliers)")
    out.add_argument("--json", action="store_true", help='print [{"id": ..., "score": ...}], farthest first')
    out.set_defaults(handler=cmd_outliers)

    idx = sub.add_parser("index", help="the Chroma search index (derived from the stored embeddings)")
    idx_sub = idx.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    reb = idx_sub.add_parser("rebuild", help="rebuild every index of a project from the store")
    reb.add_argument("--project", required=True)
    reb.set_defaults(handler=cmd_index_rebuild)
