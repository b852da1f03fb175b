"""The ``loupe`` console script: the main jobs for scripts and CI.

Every command prints a short result on stdout; bad input prints one line
starting with ``error:`` on stderr and exits with code 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import LoupeError

APP_PATH = Path(__file__).resolve().parent.parent / "app.py"
Handler = Callable[[argparse.Namespace], int]


def _engine():
    from core.store import get_engine

    return get_engine()


def run_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str], Path]:
    """The dashboard's command, environment and working directory, from the settings resolved once.

    The server runs in the repository, so the store's location is handed over absolute in the
    environment: the CLI (which loads the demo) and the dashboard then open the same database.
    """
    from core.settings import child_environment, load_settings

    env = child_environment(load_settings())
    command = [
        # ui.serve wraps `streamlit run` so bookmarked pages open inside the app shell (see its docstring).
        sys.executable, "-m", "ui.serve", "run", str(APP_PATH),
        "--server.port", str(args.port), "--server.address", args.address, "--server.headless", "true",
    ]
    return command, env, APP_PATH.parent


def cmd_run(args: argparse.Namespace) -> int:
    from core.demo import load_demo_on_first_start
    from core.settings import load_settings
    from core.store import get_engine

    command, env, cwd = run_command(args)
    if not args.no_demo:
        result = load_demo_on_first_start(get_engine(load_settings(env)))
        if result is not None:
            print(f"Loaded the demo project: {result.summary()}")
    print(f"Loupe is starting on http://{args.address}:{args.port}")
    return subprocess.call(command, env=env, cwd=cwd)


def cmd_projects(args: argparse.Namespace) -> int:
    from core.store import session_scope
    from core.store.projects import list_projects

    with session_scope(_engine()) as session:
        projects = list_projects(session)
    if args.json:
        print(json.dumps([p.as_dict() for p in projects], ensure_ascii=False))
        return 0
    if not projects:
        print("No projects yet. Import a file: loupe import PATH --project NAME")
        return 0
    width = max(len("project"), *(len(p.name) for p in projects))
    print(f"{'project':<{width}}  records  tasks  manual labels")
    for p in projects:
        print(f"{p.name:<{width}}  {p.records:>7}  {p.tasks:>5}  {p.manual_labels:>13}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from core.importers import import_file

    result = import_file(_engine(), project=args.project, path=args.path, fmt=args.format,
                         primary_key=args.primary_key, password=args.password)
    print(result.summary())
    return 0


def cmd_task_add(args: argparse.Namespace) -> int:
    from core.store.tasks_service import add_task, split_labels

    created = add_task(_engine(), project=args.project, name=args.name, kind=args.kind, attribute=args.attribute,
                       labels=split_labels(args.labels))
    print(created.summary())
    return 0


def cmd_task_labels(args: argparse.Namespace) -> int:
    from core.store import session_scope
    from core.store.projects import bump_revision, get_project
    from core.store.tasks import add_labels, get_task

    labels = [label for label in args.add.split(",") if label.strip()]
    with session_scope(_engine()) as session:
        project = get_project(session, args.project)
        task = get_task(session, project.id or 0, args.task)
        created = add_labels(session, task=task, names=labels)
        bump_revision(session, project.id or 0)
    print(f"Added {len(created)} label(s) to {args.task!r}: {', '.join(label.name for label in created)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from core import __version__
    from core.importers import FORMATS

    parser = argparse.ArgumentParser(prog="loupe", description="Loupe: NLP labeling and data exploration.")
    parser.add_argument("--version", action="version", version=f"loupe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start the dashboard (loads the demo project on first start)")
    run.add_argument("--port", type=int, default=8501)
    run.add_argument("--address", default="127.0.0.1")
    run.add_argument("--no-demo", action="store_true", help="do not create the demo project on this first start")
    run.set_defaults(handler=cmd_run)

    projects = sub.add_parser("projects", help="list projects with record and task counts")
    projects.add_argument("--json", action="store_true", help="print a JSON list of objects")
    projects.set_defaults(handler=cmd_projects)

    imp = sub.add_parser("import", help="import a file into a project (created when missing); all or nothing")
    imp.add_argument("path")
    imp.add_argument("--project", required=True)
    imp.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    imp.add_argument("--primary-key", help="column whose values identify records; a re-import updates them")
    imp.add_argument("--password", help="password of an AES-encrypted .zip (e.g. a protected export)")
    imp.set_defaults(handler=cmd_import)

    task = sub.add_parser("task", help="labeling tasks")
    task_sub = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    add = task_sub.add_parser("add", help="create a labeling task")
    add.add_argument("--project", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=["classification", "multilabel", "extraction"])
    add.add_argument("--attribute", help="the attribute the task labels (required for extraction)")
    add.add_argument("--labels", required=True, help="comma-separated label names")
    add.set_defaults(handler=cmd_task_add)
    labels = task_sub.add_parser("labels", help="add labels to a task")
    labels.add_argument("--project", required=True)
    labels.add_argument("--task", required=True)
    labels.add_argument("--add", required=True, help="comma-separated label names")
    labels.set_defaults(handler=cmd_task_labels)
    # Each area registers its own subcommands (labeling, export, embeddings, browsing, heuristics).
    from core import cli_browse, cli_embeddings, cli_export, cli_heuristics, cli_labeling

    for area in (cli_labeling, cli_export, cli_embeddings, cli_browse, cli_heuristics):
        area.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loupe`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LoupeError as e:
        # One line, whatever the message holds (a parser's error text may span several).
        message = " ".join(part.strip() for part in str(e).splitlines() if part.strip())
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
