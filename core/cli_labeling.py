"""``loupe label`` and ``loupe agreement``: manual labels and annotator agreement from the shell."""

from __future__ import annotations

import argparse
import getpass
import json
import os

from core.errors import ValidationError

ANNOTATOR_ENV = "LOUPE_ANNOTATOR"


def default_annotator() -> str:
    """``$LOUPE_ANNOTATOR``, else the login name."""
    return os.environ.get(ANNOTATOR_ENV) or getpass.getuser() or "annotator"


def _span(text: str) -> tuple[int, int]:
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return int(start), int(end)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"a span is START:END in tokens, end exclusive (e.g. 3:5); got {text!r}"
        ) from e


def cmd_label(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.labeling import label

    result = label(_engine(), project=args.project, task=args.task, record=args.record, labels=args.label,
                   annotator=args.annotator or default_annotator(), span=args.span)
    what = ", ".join(repr(n) for n in result.labels) or "nothing"
    verb = "Labeled" if result.changed else "Unchanged:"
    print(f"{verb} record {args.record!r} for task {args.task!r}: {what}; status {result.status.value}")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from core.agreement import agreement_report
    from core.cli import _engine
    from core.label_queue import list_slices, slice_record_ids
    from core.store import session_scope
    from core.store.projects import get_project
    from core.store.tasks import get_task

    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        task = get_task(session, project.id or 0, args.task)
        record_ids = None
        if args.slice:
            by_name = dict((name, sid) for sid, name in list_slices(session, project_id=project.id or 0))
            if args.slice not in by_name:
                known = ", ".join(repr(n) for n in by_name) or "none"
                raise ValidationError(f"No slice named {args.slice!r} in this project. Slices: {known}.")
            record_ids = slice_record_ids(session, slice_id=by_name[args.slice])
        report = agreement_report(session, task_id=task.id or 0, record_ids=record_ids)
    payload = report.as_dict()
    if args.json:
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    if report.pairs.empty:
        print(f"Task {args.task!r}: fewer than two annotators have labeled it; no agreement to compute.")
        return 0
    print(f"Task {args.task!r} ({report.level} level), {report.items} record(s) labeled by two or more annotators")
    width = max(len(str(n)) for n in [*report.pairs["a"], *report.pairs["b"], "annotator"])
    print(f"{'a':<{width}}  {'b':<{width}}  {'n':>5}  {'percent':>7}  {'kappa':>6}")
    for pair in payload["pairs"]:
        percent = "-" if pair["percent"] is None else f"{pair['percent']:.1f}"
        kappa = "-" if pair["cohen_kappa"] is None else f"{pair['cohen_kappa']:.3f}"
        print(f"{pair['a']:<{width}}  {pair['b']:<{width}}  {pair['n']:>5}  {percent:>7}  {kappa:>6}")
    alpha = payload["krippendorff_alpha"]
    print(f"Krippendorff's alpha (nominal): {'-' if alpha is None else f'{alpha:.3f}'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``label`` and ``agreement`` to the ``loupe`` command's subparsers."""
    lab = sub.add_parser("label", help="give a record a manual label (written at once)")
    lab.add_argument("--project", required=True)
    lab.add_argument("--task", required=True)
    lab.add_argument("--record", required=True, help="the record's key: primary-key value or running id")
    lab.add_argument("--label", required=True, action="append",
                     help="label name; repeat for a multi-label task (the whole set is written)")
    lab.add_argument("--annotator", help=f"who labels (default: ${ANNOTATOR_ENV} or your login name)")
    lab.add_argument("--span", type=_span, help="token span START:END (end exclusive) for extraction tasks")
    lab.set_defaults(handler=cmd_label)

    agr = sub.add_parser("agreement", help="inter-annotator agreement of a task (percent, Cohen's kappa, alpha)")
    agr.add_argument("--project", required=True)
    agr.add_argument("--task", required=True)
    agr.add_argument("--slice", help="only the records of this saved data slice")
    agr.add_argument("--json", action="store_true", help='print {"pairs": [...], "krippendorff_alpha": A}')
    agr.set_defaults(handler=cmd_agreement)
