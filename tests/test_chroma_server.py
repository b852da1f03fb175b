"""The index on a real Chroma server: ``CHROMA_HOST``/``CHROMA_PORT`` switch ``core.index`` to ``HttpClient``.

A server is started once for this module with the venv's ``chroma`` CLI, on
127.0.0.1 only and a free port, with its data in a temporary directory and
telemetry off; it is stopped (its whole process group) afterwards. Without
the ``chroma`` CLI the tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core import index
from core.embeddings import embed_attribute
from core.search import semantic_search, similar_records
from core.store import session_scope
from core.store.embeddings import resolve_space
from tests.fixtures_embeddings import PROJECT, embedding_model_fixture, make_project  # noqa: F401

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    path: Path

    def client(self) -> Any:
        """A client of its own (not the one ``core.index`` caches), to look at the server independently."""
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False))


def _chroma_cli() -> str | None:
    beside_python = Path(sys.executable).parent / "chroma"
    return str(beside_python) if beside_python.is_file() else shutil.which("chroma")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _heartbeat(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/v2/heartbeat", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT / 2)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module", name="chroma_server")
def chroma_server_fixture() -> Iterator[ChromaServer]:
    """A Chroma server on 127.0.0.1 and a free port for this module; stopped at the end."""
    cli = _chroma_cli()
    if cli is None:
        pytest.skip("the chroma CLI (installed with chromadb) is not on PATH or beside the Python interpreter")
    base = Path(tempfile.mkdtemp(prefix="loupe-chroma-"))
    log = base / "server.log"
    port = _free_port()
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_TELEMETRY": "False", "NO_COLOR": "1"}
    env.pop("CHROMA_HOST", None)
    env.pop("CHROMA_PORT", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [cli, "run", "--host", HOST, "--port", str(port), "--path", str(base / "data")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _heartbeat(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                state = f"exited with {process.returncode}" if process.poll() is not None else "no heartbeat"
                raise RuntimeError(f"Chroma server on {HOST}:{port} did not start ({state}):\n{tail}")
            time.sleep(0.1)
        yield ChromaServer(host=HOST, port=port, path=base / "data")
    finally:
        _stop(process)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(name="server_env")
def server_env_fixture(chroma_server: ChromaServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChromaServer]:
    """CHROMA_HOST/CHROMA_PORT pointing at the server, with no cached clients before or after."""
    monkeypatch.setenv("CHROMA_HOST", chroma_server.host)
    monkeypatch.setenv("CHROMA_PORT", str(chroma_server.port))
    index.reset_clients()
    yield chroma_server
    index.reset_clients()


def test_settings_and_client_follow_the_environment(server_env: ChromaServer) -> None:
    settings = index.load_chroma_settings()
    assert (settings.host, settings.port) == (server_env.host, server_env.port)
    assert settings.describe() == f"Chroma server {server_env.host}:{server_env.port}"
    client = index.get_client()
    assert client is index.get_client()  # cached per server
    assert int(client.heartbeat()) > 0


def test_search_and_rebuild_against_the_server(
    server_env: ChromaServer, engine: Engine, loupe_home: Path, embedding_model: Any
) -> None:
    project_id = make_project(engine)
    result = embed_attribute(engine, project=PROJECT, attribute="text")
    assert result.index == "rebuilt" and result.records == 15
    # Nothing went to the embedded directory: the index lives on the server.
    assert not (loupe_home / "chroma" / "chroma.sqlite3").exists()

    with session_scope(engine) as session:
        space = resolve_space(session, project_id=project_id)
        name = index.collection_name(space)
        assert index.index_status(session, space=space) is index.IndexStatus.FRESH
        hits = similar_records(session, project_id=project_id, key="1", k=3)
    assert hits[0].key == "2" and hits[0].score > 0.8 and "1" not in {h.key for h in hits}

    observer = server_env.client()
    collection = observer.get_collection(name)
    assert collection.count() == 15
    assert collection.metadata[index.REVISION_KEY] == space.revision
    assert collection.configuration_json["hnsw"]["space"] == "cosine"

    # Another client drops the collection on the server: the status says so and a search rebuilds it.
    observer.delete_collection(name)
    with session_scope(engine) as session:
        assert index.index_status(session, space=space) is index.IndexStatus.MISSING
        hits = semantic_search(session, project_id=project_id, query="a football match", k=3)
        assert index.index_status(session, space=space) is index.IndexStatus.FRESH
    assert {h.key for h in hits[:2]} <= {"1", "2", "6"}
    assert observer.get_collection(name).count() == 15

    # A collection left behind by a crash mid-build (no revision) is stale and rebuilt as well.
    observer.get_collection(name).modify(metadata={index.REVISION_KEY: -1, "project_id": project_id})
    with session_scope(engine) as session:
        assert index.index_status(session, space=space) is index.IndexStatus.STALE
        assert index.ensure_index(session, space=space) is index.IndexStatus.STALE
        assert index.index_status(session, space=space) is index.IndexStatus.FRESH
        assert index.drop_index(space) is True and index.drop_index(space) is False
    assert name not in {c.name for c in observer.list_collections()}
