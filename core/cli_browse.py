"""``loupe metrics``, ``loupe browse`` and ``loupe slices``: the data browser and the dashboard for scripts.

Filters are given as JSON, in the form dynamic slices store (see
:mod:`core.filters`), or as a preset::

    loupe metrics --project news --task sentiment --slice "hard cases" --json
    loupe browse --project news --preset low_confidence --task sentiment --limit 20
    loupe slices save --project news --name todo --preset unlabeled_random --task sentiment
    loupe slices save --project news --name ads --static \\
        --filter '[{"kind": "attribute", "attribute": "channel", "op": "equals", "values": ["ads"]}]'
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from core.errors import LoupeError, ValidationError
from core.filters import PRESETS, Filter, Sort, SortBy, preset

LABEL_ERRORS_SHOWN = 50


def _engine() -> Any:
    from core.store import get_engine

    return get_engine()


def parse_filter(text: str | None) -> Filter:
    """A filter from JSON: ``{"conditions": [...]}`` or just the list of conditions."""
    if not text:
        return Filter()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError(f"--filter is not valid JSON ({e.msg} at position {e.pos}).") from e
    return Filter.from_dict({"conditions": data} if isinstance(data, list) else data)


def _filter_and_sort(args: argparse.Namespace) -> tuple[Filter, Sort | None]:
    flt, order = parse_filter(getattr(args, "filter", None)), None
    if getattr(args, "preset", None):
        if not args.task:
            raise ValidationError(f"Preset {args.preset!r} works on a task: add --task NAME.")
        extra, order = preset(args.preset, task=args.task, seed=getattr(args, "seed", None))
        flt = flt.add(*extra.conditions)
    return flt, order


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def cmd_metrics(args: argparse.Namespace) -> int:
    from core.metrics import task_metrics
    from core.store import session_scope
    from core.store.projects import get_project

    flt, _ = _filter_and_sort(args)
    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        pid = project.id or 0
        metrics = task_metrics(session, project_id=pid, task=args.task, flt=flt, slice_name=args.slice,
                               bins=args.bins)
        data = metrics.as_dict()
        errors: list[dict[str, Any]] = []
        note: str | None = None
        if args.label_errors and metrics.kind == "classification":
            errors, note = _label_errors(session, pid, args, flt)
        elif args.label_errors:
            note = (f"Label errors are found for classification tasks; {args.task!r} is a task of kind "
                    f"{metrics.kind!r}.")
    data["label_errors"] = errors
    if note:
        data["label_errors_note"] = note
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    print(f"Task {metrics.task!r} ({metrics.kind}), {metrics.records} record(s)")
    for measure, count in data["progress"].items():
        print(f"  {measure:<20} {count:>8}")
    print("\nLabel distribution (manual / weak supervision):")
    for label, row in metrics.distribution.iterrows():
        print(f"  {label!s:<20} {row['manual']:>8} {row['weak_supervision']:>8}")
    print(f"\nConfusion matrix (rows: valid manual labels, columns: weak supervision; per {metrics.confusion_level}):")
    print(metrics.confusion.to_string())
    if errors:
        print(f"\nLikely label errors (first {min(len(errors), LABEL_ERRORS_SHOWN)}):")
        for item in errors[:LABEL_ERRORS_SHOWN]:
            print(f"  {item['id']!s:<12} {item['label']} → {item['suggested']}  (score {item['score']:.3f})")
    elif note:
        print(f"\n{note}")
    return 0


def _label_errors(session: Any, project_id: int, args: argparse.Namespace, flt: Filter) -> tuple[list[Any], str | None]:
    from core.label_errors import label_errors_for_task

    record_ids = None
    if flt or args.slice:
        from core.browse import ordered_ids
        from core.metrics import scope_filter

        record_ids = ordered_ids(session, project_id=project_id, flt=scope_filter(flt, slice_name=args.slice),
                                 limit=None)
    try:
        found = label_errors_for_task(session, project_id=project_id, task=args.task, attribute=args.attribute,
                                      model=args.model, record_ids=record_ids)
    except LoupeError as e:
        # No embeddings or too few labels: the other numbers still stand.
        return [], str(e)
    return [
        {"id": r.id, "record_id": int(r.record_id), "label": r.label, "suggested": r.suggested,
         "score": round(float(r.score), 6), "confidence": round(float(r.suggested_confidence), 6)}
        for r in found.itertuples(index=False)
    ], None


def cmd_browse(args: argparse.Namespace) -> int:
    from core.browse import browse_page
    from core.store import session_scope
    from core.store.browse_indexes import ensure_browse_indexes
    from core.store.projects import get_project

    flt, order = _filter_and_sort(args)
    if args.sort:
        order = _parse_sort(args.sort, task=args.task, seed=args.seed, descending=args.descending)
    engine = _engine()
    ensure_browse_indexes(engine)  # databases created before the browser existed lack them
    with session_scope(engine) as session:
        project = get_project(session, args.project)
        page = browse_page(session, project_id=project.id or 0, flt=flt, sort=order, offset=args.offset,
                           limit=args.limit, tasks=[args.task] if args.task else None)
    rows = [{k: _json_value(v) for k, v in row.items()} for row in page.frame.to_dict("records")]
    if args.json:
        print(json.dumps({"total": page.total, "offset": page.offset, "rows": rows}, ensure_ascii=False,
                         default=str))
        return 0
    print(f"{page.total} record(s) match; showing {len(rows)} from {page.offset}.")
    if rows:
        print(page.frame.to_string(index=False, max_colwidth=40))
    return 0


def _parse_sort(text: str, *, task: str | None, seed: int | None, descending: bool) -> Sort:
    """``record``, ``random``, ``confidence`` or ``attribute:NAME``."""
    kind, _, name = text.partition(":")
    try:
        by = SortBy(kind)
    except ValueError as e:
        raise ValidationError(f"Unknown sort {text!r}; use record, random, confidence or attribute:NAME.") from e
    if by is SortBy.ATTRIBUTE and not name:
        raise ValidationError("Name the attribute to sort by: --sort attribute:NAME.")
    return Sort(by=by, attribute=name or None, task=task, descending=descending, seed=seed or 0)


def cmd_slices_list(args: argparse.Namespace) -> int:
    from core.slices import slices_frame
    from core.store import session_scope
    from core.store.projects import get_project

    with session_scope(_engine()) as session:
        frame = slices_frame(session, project_id=get_project(session, args.project).id or 0)
    if args.json:
        print(json.dumps([{**r, "updated": str(r["updated"])} for r in frame.to_dict("records")], ensure_ascii=False))
        return 0
    if frame.empty:
        print(f"No data slices in {args.project!r} yet. Save one: loupe slices save --project ... --name ...")
        return 0
    print(frame.drop(columns=["updated"]).to_string(index=False))
    return 0


def cmd_slices_save(args: argparse.Namespace) -> int:
    from core.slices import count_slice, save_filter_slice
    from core.store import session_scope
    from core.store.projects import get_project

    flt, _ = _filter_and_sort(args)
    kind = "static" if args.static else "dynamic"
    with session_scope(_engine()) as session:
        pid = get_project(session, args.project).id or 0
        saved = save_filter_slice(session, project_id=pid, name=args.name, flt=flt, kind=kind, replace=args.replace)
        count = count_slice(session, project_id=pid, name=saved.name)
    print(f"Saved {kind} slice {saved.name!r}: {count} record(s) now.")
    return 0


def cmd_slices_rename(args: argparse.Namespace) -> int:
    from core.slices import rename_slice
    from core.store import session_scope
    from core.store.projects import get_project

    with session_scope(_engine()) as session:
        rename_slice(session, project_id=get_project(session, args.project).id or 0, name=args.name,
                     new_name=args.to)
    print(f"Renamed slice {args.name!r} to {args.to!r}.")
    return 0


def cmd_slices_delete(args: argparse.Namespace) -> int:
    from core.slices import delete_slice
    from core.store import session_scope
    from core.store.projects import get_project

    with session_scope(_engine()) as session:
        delete_slice(session, project_id=get_project(session, args.project).id or 0, name=args.name)
    print(f"Deleted slice {args.name!r}.")
    return 0


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", help="filter as JSON: a list of conditions (see core/filters.py)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a preset filter (needs --task)")
    parser.add_argument("--seed", type=int, help="seed of a random order")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``metrics``, ``browse`` and ``slices`` to the ``loupe`` command's subparsers."""
    met = sub.add_parser("metrics", help="label quality of a task: progress, distributions, confusion, label errors")
    met.add_argument("--project", required=True)
    met.add_argument("--task", required=True)
    met.add_argument("--slice", help="only the records of this saved data slice")
    _filter_options(met)
    met.add_argument("--bins", type=int, default=10, help="bins of the confidence histogram (default 10)")
    met.add_argument("--no-label-errors", dest="label_errors", action="store_false",
                     help="skip the cross-validated search for label errors")
    met.add_argument("--attribute", help="embedding space for label errors: the embedded attribute")
    met.add_argument("--model", help="embedding space for label errors: the model")
    met.add_argument("--json", action="store_true",
                     help='print {"confusion": {"labels", "matrix"}, "distribution", "label_errors", ...}')
    met.set_defaults(handler=cmd_metrics)

    bro = sub.add_parser("browse", help="one page of records matching a filter, with labels per task")
    bro.add_argument("--project", required=True)
    bro.add_argument("--task", help="show this task's columns only (and the task of a preset)")
    _filter_options(bro)
    bro.add_argument("--sort", help="record, random, confidence (needs --task) or attribute:NAME")
    bro.add_argument("--descending", action="store_true")
    bro.add_argument("--offset", type=int, default=0)
    bro.add_argument("--limit", type=int, default=20)
    bro.add_argument("--json", action="store_true", help='print {"total": N, "rows": [...]}')
    bro.set_defaults(handler=cmd_browse)

    sl = sub.add_parser("slices", help="saved data slices: list, save, rename, delete")
    sl_sub = sl.add_subparsers(dest="slices_command", required=True, metavar="ACTION")
    ls = sl_sub.add_parser("list", help="the project's slices with their current record counts")
    ls.add_argument("--project", required=True)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_slices_list)
    save = sl_sub.add_parser("save", help="save a filter as a dynamic slice (or --static: freeze today's records)")
    save.add_argument("--project", required=True)
    save.add_argument("--name", required=True)
    save.add_argument("--task", help="the task of a preset")
    _filter_options(save)
    save.add_argument("--static", action="store_true", help="freeze the records that match now")
    save.add_argument("--replace", action="store_true", help="overwrite a slice of the same name")
    save.set_defaults(handler=cmd_slices_save)
    ren = sl_sub.add_parser("rename", help="rename a slice")
    ren.add_argument("--project", required=True)
    ren.add_argument("--name", required=True)
    ren.add_argument("--to", required=True)
    ren.set_defaults(handler=cmd_slices_rename)
    rm = sl_sub.add_parser("delete", help="delete a slice")
    rm.add_argument("--project", required=True)
    rm.add_argument("--name", required=True)
    rm.set_defaults(handler=cmd_slices_delete)
