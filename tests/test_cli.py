"""The ``loupe`` command line, in-process (``core.cli.main``) and once as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.cli import main
from core.store import make_engine, session_scope
from core.store.models import RecordTokens
from tests.conftest import DATA, REPO
from tests.fixtures_pg import db_url_fixture, pg_cluster_fixture, pg_url_fixture  # noqa: F401


@pytest.fixture()
def cli_db(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI's environment: LOUPE_HOME in the test's temp dir, DATABASE_URL the test's database."""
    monkeypatch.setenv("LOUPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def projects(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, err = run(capsys, "projects", "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


def test_projects_json_lists_objects_with_counts(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert projects(capsys) == []
    code, _, _ = run(capsys, "import", str(DATA / "refinery_export.json"), "--project", "news")
    assert code == 0
    listed = projects(capsys)
    assert len(listed) == 1
    assert {k: listed[0][k] for k in ("name", "records", "tasks", "manual_labels")} == {
        "name": "news", "records": 4, "tasks": 3, "manual_labels": 12
    }


def test_projects_table(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "projects")
    assert (code, out.strip()) == (0, "No projects yet. Import a file: loupe import PATH --project NAME")
    run(capsys, "import", str(DATA / "records.csv"), "--project", "shop")
    code, out, _ = run(capsys, "projects")
    assert out.splitlines() == ["project  records  tasks  manual labels", "shop           4      0              0"]


def test_import_prints_what_it_imported(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "import", str(DATA / "labelstudio_export.json"), "--project", "reviews")
    assert (code, err) == (0, "")
    assert out.startswith(
        "labelstudio_export.json → reviews: imported 3 new record(s); 2 new attribute(s); task(s) sentiment, ner; "
        "5 manual label(s), 3 model label(s) in "
    )


def test_import_with_primary_key_updates_on_reimport(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", str(DATA / "pk_first.csv"), "--project", "shop", "--primary-key", "id")
    code, out, _ = run(capsys, "import", str(DATA / "pk_second.csv"), "--project", "shop", "--primary-key", "id")
    assert code == 0
    assert "imported 1 new record(s); updated 1;" in out
    assert projects(capsys)[0]["records"] == 4


def test_import_format_option(cli_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "records.dat"
    path.write_bytes((DATA / "records.tsv").read_bytes())
    code, out, _ = run(capsys, "import", str(path), "--project", "shop", "--format", "tsv")
    assert code == 0
    assert "imported 4 new record(s)" in out


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("bad_columns.csv", "error: bad_columns.csv, line 3: expected 3 columns as in the header, found 4"),
        ("bad_malformed.json", "error: bad_malformed.json, line 4: malformed JSON: "),
        ("bad_encoding.csv", "error: bad_encoding.csv, line 3: not valid UTF-8"),
        ("empty.csv", "error: empty.csv: the file is empty; nothing to import"),
        ("bad_extension.xml", "error: bad_extension.xml: unsupported file extension '.xml'"),
    ],
)
def test_bad_import_exits_1_with_one_line(
    cli_db: str, capsys: pytest.CaptureFixture[str], file: str, message: str
) -> None:
    code, out, err = run(capsys, "import", str(DATA / file), "--project", "shop")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    assert err.startswith(message)
    assert projects(capsys) == []


def test_unreadable_workbook_is_one_line(cli_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not a workbook")
    code, out, err = run(capsys, "import", str(path), "--project", "shop")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    assert err.startswith("error: broken.xlsx: not a readable XLSX workbook")


def test_task_add_and_labels(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", str(DATA / "records.csv"), "--project", "shop")
    code, out, err = run(capsys, "task", "add", "--project", "shop", "--name", "sentiment", "--kind",
                         "classification", "--labels", "positive,negative")
    assert (code, err) == (0, "")
    assert out.strip() == (
        "Created classification task 'sentiment' on the whole record with 2 label(s): positive, negative"
    )
    code, out, err = run(capsys, "task", "labels", "--project", "shop", "--task", "sentiment", "--add", "neutral")
    assert (code, out.strip(), err) == (0, "Added 1 label(s) to 'sentiment': neutral", "")
    assert projects(capsys)[0]["tasks"] == 1


def test_task_add_extraction_tokenizes_the_attribute(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", str(DATA / "records.csv"), "--project", "shop")
    code, out, _ = run(capsys, "task", "add", "--project", "shop", "--name", "ner", "--kind", "extraction",
                       "--attribute", "text", "--labels", "PER,LOC")
    assert code == 0
    assert out.strip() == "Created extraction task 'ner' on attribute 'text' with 2 label(s): PER, LOC"
    with session_scope(make_engine(cli_db)) as session:
        assert session.execute(select(func.count()).select_from(RecordTokens)).scalar_one() == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["task", "add", "--project", "nope", "--name", "t", "--kind", "classification", "--labels", "a"],
         "error: No project named 'nope'. Projects: 'shop'."),
        (["task", "add", "--project", "shop", "--name", "ner", "--kind", "extraction", "--attribute", "category",
          "--labels", "a"], "error: Extraction tasks need a TEXT attribute; 'category' is CATEGORY."),
        (["task", "add", "--project", "shop", "--name", "ner", "--kind", "extraction", "--labels", "a"],
         "error: Extraction tasks label spans of a text: name the attribute (--attribute)."),
        (["task", "labels", "--project", "shop", "--task", "topic", "--add", "a"],
         "error: No labeling task named 'topic' in this project. Tasks: none yet."),
    ],
)
def test_task_errors_exit_1_with_one_line(
    cli_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    run(capsys, "import", str(DATA / "records.csv"), "--project", "shop")
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err == message + "\n"


def test_duplicate_label_via_cli(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "import", str(DATA / "records.csv"), "--project", "shop")
    run(capsys, "task", "add", "--project", "shop", "--name", "sentiment", "--kind", "classification",
        "--labels", "positive")
    code, _, err = run(capsys, "task", "labels", "--project", "shop", "--task", "sentiment", "--add", "positive")
    assert (code, err) == (1, "error: Task 'sentiment' has label(s) 'positive' already.\n")


def test_python_dash_m_core_in_a_real_process(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "LOUPE_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url}

    def loupe(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core", *argv], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120, check=False)

    imported = loupe("import", str(DATA / "records.jsonl"), "--project", "shop")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("records.jsonl → shop: imported 4 new record(s)")
    listed = loupe("projects", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(p["name"], p["records"], p["tasks"]) for p in json.loads(listed.stdout)] == [("shop", 4, 0)]
    refused = loupe("import", str(DATA / "bad_columns.csv"), "--project", "shop")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.splitlines() == [
        "error: bad_columns.csv, line 3: expected 3 columns as in the header, found 4"
    ]


def test_import_reads_a_password_zip_and_refuses_a_wrong_password(loupe_home, tmp_path, capsys) -> None:
    from core.archive import zip_file
    from core.cli import main

    protected = tmp_path / "records.csv.zip"
    zip_file(DATA / "records.csv", protected, arcname="records.csv", password="s3cret")
    assert main(["import", str(protected), "--project", "z", "--password", "wrong"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "password" in err.lower() and "\n" not in err
    assert main(["import", str(protected), "--project", "z", "--password", "s3cret"]) == 0
    assert "imported" in capsys.readouterr().out


# --- loupe run (the server itself is replaced by a recorder) -------------------------------------------------------


@pytest.fixture()
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Record what ``loupe run`` would start instead of starting Streamlit."""
    import core.cli

    calls: list[dict[str, object]] = []

    def call(command: list[str], *, env: dict[str, str], cwd: Path) -> int:
        calls.append({"command": command, "env": env, "cwd": cwd})
        return 0

    monkeypatch.setattr(core.cli.subprocess, "call", call)
    return calls


def _project_names(database_url: str) -> list[str]:
    from core.store.models import Project

    with session_scope(make_engine(database_url)) as session:
        return list(session.execute(select(Project.name)).scalars().all())


def test_run_from_another_directory_hands_the_dashboard_the_same_database(
    fake_server: list[dict[str, object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from core.demo import DEMO_PROJECT
    from core.settings import load_settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("LOUPE_HOME", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    code, out, _ = run(capsys, "run", "--port", "8765")

    assert code == 0 and "Loaded the demo project" in out
    [started] = fake_server
    env = started["env"]
    assert isinstance(env, dict)
    assert started["cwd"] == REPO
    assert started["command"][-5:] == ["8765", "--server.address", "127.0.0.1", "--server.headless", "true"]
    assert env["LOUPE_HOME"] == str(elsewhere / "data" / "workspace")
    # The dashboard resolves its settings in the repository; it must still open the database the CLI filled.
    monkeypatch.chdir(REPO)
    dashboard = load_settings(env)
    assert dashboard.home == elsewhere / "data" / "workspace"
    assert _project_names(dashboard.database_url) == [DEMO_PROJECT]


def test_a_relative_sqlite_database_url_is_handed_over_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import child_environment, load_settings

    monkeypatch.chdir(tmp_path)
    settings = load_settings({"LOUPE_HOME": "home", "DATABASE_URL": "sqlite:///db/loupe.db?timeout=5"})
    assert settings.database_url == f"sqlite:///{tmp_path / 'db' / 'loupe.db'}?timeout=5"
    env = child_environment(settings, {"DATABASE_URL": "sqlite:///db/loupe.db?timeout=5", "PATH": "/bin"})
    assert env == {"DATABASE_URL": settings.database_url, "LOUPE_HOME": str(tmp_path / "home"), "PATH": "/bin"}
    assert load_settings({"DATABASE_URL": "sqlite:///:memory:"}).database_url == "sqlite:///:memory:"


def test_run_loads_the_demo_on_the_first_start_only(
    fake_server: list[dict[str, object]], loupe_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.demo import DEMO_PROJECT, load_demo
    from core.settings import load_settings
    from core.store.projects import delete_project

    url = load_settings().database_url
    code, out, _ = run(capsys, "run")
    assert code == 0 and "Loaded the demo project" in out
    assert _project_names(url) == [DEMO_PROJECT]
    code, out, _ = run(capsys, "run")
    assert code == 0 and "Loaded the demo project" not in out

    with session_scope(make_engine(url)) as session:
        delete_project(session, name=DEMO_PROJECT)
    code, out, _ = run(capsys, "run")

    assert code == 0 and "Loaded the demo project" not in out
    assert _project_names(url) == []  # the user deleted it; it stays deleted
    # The Projects page's "Load demo project" still loads it on request.
    assert load_demo(make_engine(url)) is not None
    assert _project_names(url) == [DEMO_PROJECT]
    assert len(fake_server) == 3
