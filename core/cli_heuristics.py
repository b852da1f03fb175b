"""``loupe heuristics``, ``loupe lookup``, ``loupe ws`` and ``loupe stats``: heuristics and weak supervision."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import ValidationError


def _locate(session: Any, project: str, task: str | None) -> tuple[int, int | None]:
    from core.store.projects import get_project
    from core.store.tasks import get_task

    found = get_project(session, project)
    task_id = get_task(session, found.id or 0, task).id if task else None
    return found.id or 0, task_id


def _progress(done: int, total: int) -> None:
    # On stderr and only on a terminal: stdout stays the command's result.
    if sys.stderr.isatty():
        print(f"\r{done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def cmd_add(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.heuristics import add_from_file
    from core.store import session_scope

    with session_scope(_engine()) as session:
        pid, tid = _locate(session, args.project, args.task)
        added = add_from_file(session, project_id=pid, task_id=tid or 0, path=args.file,
                              enabled=not args.disabled, replace=args.replace)
        names = [h.name for h in added]
    print(f"Added {len(names)} heuristic(s) to {args.task!r}: {', '.join(names)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.heuristics import heuristics_frame
    from core.store import session_scope
    from core.store.tasks import list_tasks

    with session_scope(_engine()) as session:
        pid, tid = _locate(session, args.project, args.task)
        tasks = [(t.id or 0, t.name) for t in list_tasks(session, pid) if tid is None or t.id == tid]
        frames = [(name, heuristics_frame(session, project_id=pid, task_id=task_id)) for task_id, name in tasks]
    if args.json:
        out = [{"task": name, **row} for name, frame in frames for row in frame.to_dict(orient="records")]
        print(json.dumps(out, ensure_ascii=False, default=str))
        return 0
    for name, frame in frames:
        print(f"Task {name!r}: {len(frame)} heuristic(s)")
        for row in frame.itertuples():
            flag = "on " if row.enabled else "off"
            hits = "-" if row.hits is None or row.hits != row.hits else int(row.hits)
            print(f"  [{flag}] {row.name}  ({row.kind}, v{row.version})  {row.state}, {hits} vote(s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.heuristics import get_heuristic, run_heuristics
    from core.store import session_scope

    engine = _engine()
    with session_scope(engine) as session:
        pid, tid = _locate(session, args.project, args.task)
        ids = [get_heuristic(session, project_id=pid, task_id=tid or 0, name=n).id or 0 for n in args.name or []]
    outcomes = run_heuristics(engine, project_id=pid, task_id=tid or 0, heuristic_ids=ids or None,
                              progress=_progress, time_limit_s=args.time_limit)
    for outcome in outcomes:
        print(outcome.summary())
    return 1 if any(o.state != "finished" for o in outcomes) else 0


def cmd_toggle(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.heuristics import delete_heuristic, get_heuristic, update_heuristic
    from core.store import session_scope

    with session_scope(_engine()) as session:
        pid, tid = _locate(session, args.project, args.task)
        h = get_heuristic(session, project_id=pid, task_id=tid or 0, name=args.name)
        if args.action == "remove":
            delete_heuristic(session, heuristic_id=h.id or 0)
        else:
            update_heuristic(session, heuristic_id=h.id or 0, enabled=args.action == "enable")
    done = {"enable": "Enabled", "disable": "Disabled", "remove": "Removed"}[args.action]
    print(f"{done} heuristic {args.name!r}")
    return 0


def cmd_lookup_heuristic(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.heuristics import add_lookup_heuristic
    from core.store import session_scope

    with session_scope(_engine()) as session:
        pid, tid = _locate(session, args.project, args.task)
        h = add_lookup_heuristic(session, project_id=pid, task_id=tid or 0, lookup_list=args.list, label=args.label,
                                 attribute=args.attribute, name=args.name, case_sensitive=args.case_sensitive,
                                 whole_tokens=not args.substrings)
        name = h.name
    print(f"Added lookup-list heuristic {name!r} (list {args.list!r} → {args.label!r})")
    return 0


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1; got {text!r}") from e
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1; got {text!r}")
    return value


def _descriptions(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        label, sep, text = item.partition("=")
        if not sep or not label.strip():
            raise ValidationError(f"--describe takes LABEL=TEXT, e.g. --describe 'sports=games, players and scores'; "
                                  f"got {item!r}")
        out[label.strip()] = text.strip()
    return out


def cmd_learner(args: argparse.Namespace) -> int:
    from core import embedding_heuristics as eh
    from core.cli import _engine
    from core.heuristics import get_heuristic
    from core.store import session_scope

    with session_scope(_engine()) as session:
        pid, tid = _locate(session, args.project, args.task)
        if args.learner == "retrain":
            h = get_heuristic(session, project_id=pid, task_id=tid or 0, name=args.name)
            run = eh.retrain(session, heuristic_id=h.id or 0, min_confidence=args.min_confidence)
        else:
            options = {"project_id": pid, "task_id": tid or 0, "attribute": args.attribute, "model": args.model,
                       "enabled": not args.disabled}
            if args.min_confidence is not None:
                options["min_confidence"] = args.min_confidence
            if args.learner == eh.ACTIVE_LEARNER:
                run = eh.add_active_learner(session, name=args.name or eh.ACTIVE_LEARNER, **options)
            else:
                run = eh.add_zero_shot(session, name=args.name or eh.ZERO_SHOT,
                                       descriptions=_descriptions(args.describe), **options)
    print(run.summary())
    return 0


def cmd_ws(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.store import session_scope
    from core.weak_supervision import run_weak_supervision

    engine = _engine()
    with session_scope(engine) as session:
        pid, tid = _locate(session, args.project, args.task)
    try:
        params = json.loads(args.params) if args.params else None
    except ValueError as e:
        raise ValidationError(f"--params must be a JSON object of model options: {e}") from e
    if params is not None and not isinstance(params, dict):
        raise ValidationError(f"--params must be a JSON object of model options; got {args.params!r}")
    run = run_weak_supervision(engine, project_id=pid, task_id=tid or 0, model=args.model, params=params)
    payload = {"id": run.id, "model": run.model, "params": run.params, "heuristics": run.heuristics,
               "records": run.n_records, "labeled": run.n_labeled, "labels": run.n_labels,
               "manual": run.n_manual, "duration_s": run.duration_s}
    if args.json:
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    print(f"Weak supervision ({run.model}) on {args.task!r} with {len(run.heuristics)} heuristic(s): "
          f"{run.n_labeled} of {run.n_records} record(s) labeled ({run.n_labels} label(s)) in {run.duration_s:.2f} s")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from core.cli import _engine
    from core.stats_service import heuristic_statistics
    from core.store import session_scope

    with session_scope(_engine()) as session:
        pid, tid = _locate(session, args.project, args.task)
        stats = heuristic_statistics(session, project_id=pid, task_id=tid or 0, normalize=args.normalize)
    if args.json:
        print(json.dumps(stats.as_dict(), ensure_ascii=False))
        return 0
    print(f"Task {stats.task!r} ({stats.kind}): {stats.n_records} record(s), "
          f"{stats.n_manual} with a valid manual label")
    if stats.refinery.empty:
        print("No heuristic has votes yet: loupe heuristics run --project P --task T")
        return 0
    print(stats.refinery.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(stats.summary.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    from core import lookup
    from core.cli import _engine
    from core.store import session_scope

    with session_scope(_engine()) as session:
        pid, _ = _locate(session, args.project, None)
        if args.lookup_command == "list":
            counts = lookup.term_counts(session, project_id=pid)
            for item in lookup.list_lists(session, project_id=pid):
                print(f"{item.name}  {counts.get(item.id or 0, 0)} term(s)  {item.description}")
            return 0
        if args.lookup_command == "export":
            data = lookup.export_list(session, lookup_list=lookup.get_list(session, project_id=pid, name=args.name))
            text = json.dumps(data, ensure_ascii=False, indent=2)
            if args.out:
                Path(args.out).write_text(text + "\n", encoding="utf-8")
                print(f"Wrote {len(data['terms'])} term(s) of {args.name!r} to {args.out}")
            else:
                print(text)
            return 0
        if args.lookup_command == "import":
            try:
                payload = Path(args.file).read_bytes()
            except OSError as e:
                raise ValidationError(f"Cannot read {args.file}: {e.strerror or e}") from e
            target, added = lookup.import_list(session, project_id=pid, data=payload, name=args.name)
            message = f"Imported {added} term(s) into lookup list {target.name!r}"
        else:
            values = [t for t in (args.terms or "").split(",") if t.strip()]
            if args.lookup_command == "add":  # documented: add creates the list when it is missing
                target = lookup.find_list(session, project_id=pid, name=args.name)
                created = target is None
                if target is None:
                    target = lookup.create_list(session, project_id=pid, name=args.name)
                message = f"Added {len(lookup.add_terms(session, lookup_list=target, values=values))} term(s)"
                message += f" in {'new ' if created else ''}lookup list {target.name!r}"
            else:  # remove never creates: a typo in the name must not make an empty list
                target = lookup.get_list(session, project_id=pid, name=args.name)
                message = f"Removed {lookup.remove_terms(session, lookup_list=target, values=values)} term(s)"
                message += f" in lookup list {target.name!r}"
    print(message)
    return 0


def register(sub: Any) -> None:
    """Add the commands to ``loupe``'s subparsers."""
    from core.labelmodels import DEFAULT_MODEL
    from core.weak_supervision import MODEL_NAMES

    heur = sub.add_parser("heuristics", help="labeling functions and lookup-list heuristics")
    hsub = heur.add_subparsers(dest="heuristics_command", required=True, metavar="ACTION")
    add = hsub.add_parser("add", help="add every public function of a .py file as a heuristic")
    add.add_argument("--project", required=True)
    add.add_argument("--task", required=True)
    add.add_argument("--file", required=True, help="Python file; each top-level def not starting with _ is one")
    add.add_argument("--replace", action="store_true", help="update heuristics of the same name")
    add.add_argument("--disabled", action="store_true", help="add them without taking part in weak supervision")
    add.set_defaults(handler=cmd_add)
    lst = hsub.add_parser("list", help="heuristics with their state and last run")
    lst.add_argument("--project", required=True)
    lst.add_argument("--task")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_list)
    run = hsub.add_parser("run", help="run the task's heuristics on all records and store their votes")
    run.add_argument("--project", required=True)
    run.add_argument("--task", required=True)
    run.add_argument("--name", action="append", help="only this heuristic (repeatable)")
    run.add_argument("--time-limit", type=float, default=60.0, help="seconds per labeling function (default 60)")
    run.set_defaults(handler=cmd_run)
    for action in ("enable", "disable", "remove"):
        toggle = hsub.add_parser(action, help=f"{action} a heuristic")
        toggle.add_argument("--project", required=True)
        toggle.add_argument("--task", required=True)
        toggle.add_argument("--name", required=True)
        toggle.set_defaults(handler=cmd_toggle, action=action)
    lk = hsub.add_parser("add-lookup", help="a heuristic labeling what contains a lookup list's terms")
    lk.add_argument("--project", required=True)
    lk.add_argument("--task", required=True)
    lk.add_argument("--list", required=True)
    lk.add_argument("--label", required=True)
    lk.add_argument("--attribute")
    lk.add_argument("--name")
    lk.add_argument("--case-sensitive", action="store_true")
    lk.add_argument("--substrings", action="store_true", help="match inside tokens too")
    lk.set_defaults(handler=cmd_lookup_heuristic)
    for learner, text in (("active_learner", "a classifier trained on the manual labels' embeddings (retrains "
                                             "one of the same name)"),
                          ("zero_shot", "labels by similarity to the label names, no training (reruns one of the "
                                        "same name)")):
        cmd = hsub.add_parser(f"add-{learner.replace('_', '-')}", help=text)
        cmd.add_argument("--project", required=True)
        cmd.add_argument("--task", required=True)
        cmd.add_argument("--name", help=f"heuristic name (default: {learner})")
        cmd.add_argument("--min-confidence", type=_confidence,
                         help="store only labels at least this probable (default: "
                              f"{'0.8' if learner == 'active_learner' else '0.5'})")
        cmd.add_argument("--attribute", help="the embedded attribute (needed when the project has several)")
        cmd.add_argument("--model", help="the embedding model (needed when an attribute has several)")
        cmd.add_argument("--disabled", action="store_true", help="add it without taking part in weak supervision")
        if learner == "zero_shot":
            cmd.add_argument("--describe", action="append", metavar="LABEL=TEXT",
                             help="what a label means, to sharpen its prompt (repeatable)")
        cmd.set_defaults(handler=cmd_learner, learner=learner)
    ret = hsub.add_parser("retrain", help="train an active learner or zero-shot heuristic again on today's labels")
    ret.add_argument("--project", required=True)
    ret.add_argument("--task", required=True)
    ret.add_argument("--name", required=True)
    ret.add_argument("--min-confidence", type=_confidence, help="a new threshold (default: the saved one)")
    ret.set_defaults(handler=cmd_learner, learner="retrain")

    ws = sub.add_parser("ws", help="weak supervision")
    wsub = ws.add_subparsers(dest="ws_command", required=True, metavar="ACTION")
    wrun = wsub.add_parser("run", help="combine the enabled heuristics with a label model and store the labels")
    wrun.add_argument("--project", required=True)
    wrun.add_argument("--task", required=True)
    wrun.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODEL_NAMES))
    wrun.add_argument("--params", help='model options as JSON, e.g. \'{"tie_break": "lowest"}\'')
    wrun.add_argument("--json", action="store_true")
    wrun.set_defaults(handler=cmd_ws)

    stats = sub.add_parser("stats", help="statistics of a task's heuristics against the manual labels")
    stats.add_argument("--project", required=True)
    stats.add_argument("--task", required=True)
    stats.add_argument("--normalize", default="count", choices=["count", "records", "row_coverage"],
                       help="of the overlap and conflict matrices")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=cmd_stats)

    look = sub.add_parser("lookup", help="lookup lists (term lists)")
    lsub = look.add_subparsers(dest="lookup_command", required=True, metavar="ACTION")
    for name, text in (("list", "lookup lists with their term counts"),
                       ("add", "add comma-separated terms (creates the list when missing)"),
                       ("remove", "remove comma-separated terms from an existing list"),
                       ("import", "import a list from JSON"), ("export", "export a list as JSON")):
        cmd = lsub.add_parser(name, help=text)
        cmd.add_argument("--project", required=True)
        if name in ("add", "remove", "export"):
            cmd.add_argument("--name", required=True)
        if name in ("add", "remove"):
            cmd.add_argument("--terms", required=True)
        if name == "import":
            cmd.add_argument("--file", required=True)
            cmd.add_argument("--name", help="list name (default: the file's)")
        if name == "export":
            cmd.add_argument("--out", help="file to write (default: stdout)")
        cmd.set_defaults(handler=cmd_lookup)
