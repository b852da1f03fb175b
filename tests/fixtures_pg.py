"""Database fixtures: every store and import test runs on SQLite and on a throwaway PostgreSQL cluster.

The cluster is started once per test session with the installed ``initdb`` and
``pg_ctl``, listens on a unix socket in a temporary directory only (no TCP
port), and each test gets a database of its own that is dropped afterwards.
Where the server binaries are missing, the PostgreSQL variants are skipped
with a reason saying so; CI installs them (``.ci/run``).

Test modules import the fixtures they use (the ``*_fixture`` names keep ruff's F811 quiet when a
test takes ``db_engine`` as an argument; the short names are aliases for modules that import those)::

    from tests.fixtures_pg import db_engine_fixture, db_url_fixture, pg_cluster_fixture, pg_url_fixture  # noqa: F401
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from core.store import make_engine

PG_USER = "loupe"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass(frozen=True)
class PgCluster:
    """A running throwaway cluster reachable on a unix socket in ``socket_dir``."""

    socket_dir: Path
    user: str

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{dbname}?host={self.socket_dir}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def find_pg_bindir() -> Path | None:
    """The directory holding both ``initdb`` and ``pg_ctl``: from PATH, else the newest Debian install."""
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).resolve().parent] if initdb else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def _run(command: list[str], *, what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        details = done.stderr.strip() or done.stdout.strip()
        if log is not None and log.exists():
            details += "\n" + log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{details}")


@pytest.fixture(scope="session", name="pg_cluster")
def pg_cluster_fixture() -> Iterator[PgCluster]:
    """Start a PostgreSQL cluster for the session (initdb + pg_ctl on a unix socket); stop it at the end."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")
    prefix: list[str] = []
    # A short base path: unix socket paths are limited to about 100 bytes.
    base = Path(tempfile.mkdtemp(prefix="loupe-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as an unprivileged user owning the temp dir.
        user = _unprivileged_user()
        runuser = shutil.which("runuser")
        if user is None or runuser is None:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root, and no 'postgres'/'nobody' user or no runuser to start PostgreSQL as")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = [runuser, "-u", user.pw_name, "--"]
    data, log = base / "data", base / "server.log"
    started = False
    try:
        _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8",
              "--no-locale", "--no-sync"], what="initdb")
        options = f"-k {base} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
              "start"], what="pg_ctl start", log=log)
        started = True
        yield PgCluster(socket_dir=base, user=PG_USER)
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database of the session's cluster for one test; dropped afterwards."""
    name = f"loupe_test_{uuid.uuid4().hex[:12]}"
    pg_cluster.admin(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
    url = pg_cluster.url(name)
    try:
        yield url
    finally:
        # FORCE ends the connections still pooled by engines of this URL.
        pg_cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS, name="db_url")
def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: SQLite in the test's temp dir, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_url")
        return
    yield f"sqlite:///{tmp_path / 'loupe.db'}"


@pytest.fixture(name="db_engine")
def db_engine_fixture(db_url: str) -> Iterator[Engine]:
    """The engine of ``db_url``, tables created (``core.store.make_engine``)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order.

    The tables are those of ``SQLModel.metadata``, which ``make_engine`` fills from every module of
    ``core.store``: tables added by later modules count too.
    """
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = [tuple(row) for row in conn.execute(select(table)).all()]
            out[table.name] = sorted(rows, key=repr)
    return out


# Aliases under the fixtures' own names, for test modules that import those.
pg_cluster = pg_cluster_fixture
pg_url = pg_url_fixture
db_url = db_url_fixture
db_engine = db_engine_fixture
