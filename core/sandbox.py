"""Run user-written labeling functions safely, outside the app's process.

A labeling function is plain Python, typed into the app or loaded from a ``.py``
file: every top-level ``def`` whose name does not start with ``_`` is one heuristic
named after it, and may use the file's imports, constants and private helpers.

- Classification: ``def name(record)`` returns a label name or ``None``.
- Multi-label classification: the same, or a list (tuple, set) of label names.
- Extraction: ``def name(record)`` is a generator yielding ``(label, start, end)``
  token spans over the target attribute (end exclusive, at least one token).

``record`` is a ``dict`` of the record's attribute values (``record["text"]`` is the
string as imported). Lookup lists are module globals named after the list, and can
also be imported the refinery way: ``from knowledge import my_list``.

Each heuristic runs in its own worker process (:mod:`core.sandbox_worker`, started
with ``subprocess``: no fork of the app, which holds threads, torch and database
connections), with a wall-clock limit for the whole run and an address-space limit.
An infinite loop, a crash, a huge allocation or ``sys.exit`` is reported on that
heuristic, with the record it happened on; the other heuristics and the app carry on.

A heuristic that raises on one record fails as a whole and keeps no votes, like
refinery, which reports the error and stores nothing for the run. Label names that
are not defined for the task, and spans outside the record's tokens, are reported
and not stored; the rest of the run is kept.

The isolation protects the app from mistakes. It is not a security boundary: the
code runs as the app's user and can read what that user can read.
"""

from __future__ import annotations

import ast
import contextlib
import json
import keyword
import math
import os
import pickle
import re
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from core.errors import LoupeError, ValidationError
from core.sandbox_worker import KNOWLEDGE_MODULE, SOURCE_FILENAME

HeuristicKind = Literal["classification", "multilabel", "extraction"]
RunState = Literal["finished", "failed", "timeout", "memory"]
Span = tuple[str, int, int]

#: Records per pickled chunk and per result message (the progress granularity).
CHUNK_SIZE = 1000
#: Memory limits below this leave too little for the interpreter itself.
MIN_MEMORY_LIMIT_MB = 64

_WORKER_PATH = Path(__file__).with_name("sandbox_worker.py")
_FRAME = struct.Struct("!I")
_MAX_FRAME_BYTES = 256 * 1024 * 1024
_LOG_LIMIT_BYTES = 64 * 1024
_MAX_INVALID_SPAN_EXAMPLES = 100
# After the time limit the worker gets SIGUSR1 (it writes its stack) and this long before SIGKILL.
_DUMP_GRACE_S = 0.2
# Without pidfd the loop polls for exited workers this often.
_POLL_S = 0.05
# Fewer threads and malloc arenas keep numeric libraries inside the address-space limit.
_WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
_OUT_OF_MEMORY = re.compile(rb"bad_alloc|MemoryError|Cannot allocate memory|out of memory", re.IGNORECASE)
_DUMP_LINE = re.compile(r'File "' + re.escape(SOURCE_FILENAME) + r'", line (\d+) in (\S+)')


class InvalidSpan(NamedTuple):
    """A span a heuristic yielded outside the record's tokens (reported, not stored)."""

    record_id: Any
    label: str
    start: int
    end: int


@dataclass
class HeuristicRun:
    """The outcome of running one labeling function over all records.

    Attributes
    ----------
    name : str
        The function's name.
    state : {"finished", "failed", "timeout", "memory"}
        ``finished`` when every record ran; ``failed`` on an exception, a broken
        contract or a crash; ``timeout`` when the run exceeded its time limit;
        ``memory`` when it exceeded its memory limit.
    votes : list
        Only when ``finished`` (empty otherwise), one entry per record in input
        order: a label name or ``None`` (classification), a sorted list of label
        names or ``None`` (multi-label), or a list of ``(label, start, end)`` token
        spans (extraction).
    error : str or None
        What went wrong: the exception type and message, the line of user code and
        the record id it happened on.
    failed_record_id : Any
        The id of the record the run failed on, when known.
    invalid_labels : set of str
        Label names the function emitted that are not defined for the task; those
        votes are ``None`` (classification) or dropped (extraction).
    invalid_spans : list of InvalidSpan
        Up to 100 examples of spans outside ``0 <= start < end <= n_tokens``; dropped.
    n_invalid_spans : int
        How many spans were dropped for their bounds.
    duration_s : float
        Wall-clock time of the run, process start-up included.
    logs : str
        The tail (up to 64 KiB) of what the function printed to stdout and stderr.
    """

    name: str
    state: RunState
    votes: list[Any] = field(default_factory=list)
    error: str | None = None
    failed_record_id: Any = None
    invalid_labels: set[str] = field(default_factory=set)
    invalid_spans: list[InvalidSpan] = field(default_factory=list)
    n_invalid_spans: int = 0
    duration_s: float = 0.0
    logs: str = ""


@dataclass(frozen=True)
class Program:
    """One labeling function of its own source, for :func:`run_programs`.

    Attributes
    ----------
    name : str
        The function to run, defined in ``source``; also the key of its run.
    source : str
        The Python code defining it (see :func:`discover_functions`).
    lookup_lists : mapping of str to sequence of str
        The term lists this code may use, as in :func:`run_heuristics`.
    """

    name: str
    source: str
    lookup_lists: Mapping[str, Sequence[str]] = field(default_factory=dict)


def discover_functions(source: str) -> list[str]:
    """List the labeling functions defined in a source, without running it.

    Parameters
    ----------
    source : str
        Python code, as typed or as read from a ``.py`` file.

    Returns
    -------
    list of str
        The names of the top-level functions not starting with ``_``, in order.

    Raises
    ------
    ValidationError
        On a syntax error (with its line), duplicate names, a function that cannot
        take the record as its one argument, an ``async def``, or no function at all.
    """
    if not isinstance(source, str):
        raise ValidationError(f"source must be Python code as a str, got {type(source).__name__}")
    try:
        tree = ast.parse(source, filename=SOURCE_FILENAME)
    except SyntaxError as e:
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        text = (e.text or "").strip()
        raise ValidationError(f"syntax error on {where}: {e.msg}" + (f"\n    {text}" if text else "")) from e
    except ValueError as e:  # e.g. null bytes in the source
        raise ValidationError(f"the code cannot be parsed: {e}") from e

    lines: dict[str, list[int]] = {}
    functions: list[ast.FunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and not node.name.startswith("_"):
            raise ValidationError(
                f"line {node.lineno}: `async def {node.name}` cannot be a labeling function; use `def` "
                "(or start the name with `_` if it is a helper)"
            )
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            lines.setdefault(node.name, []).append(node.lineno)
            functions.append(node)
    duplicates = {name: found for name, found in lines.items() if len(found) > 1}
    if duplicates:
        listed = "; ".join(f"{name} (lines {', '.join(map(str, found))})" for name, found in duplicates.items())
        raise ValidationError(
            f"duplicate labeling function names: {listed}. Each function is one heuristic named "
            "after it: rename or remove the duplicates."
        )
    if not functions:
        raise ValidationError(
            "no labeling function found: define at least one top-level `def name(record): ...` "
            "(functions whose name starts with `_` are helpers, not heuristics)"
        )
    for node in functions:
        _check_signature(node)
    return list(lines)


def _check_signature(node: ast.FunctionDef) -> None:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    required_keyword = [a.arg for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None]
    if required <= 1 and (positional or args.vararg) and not required_keyword:
        return
    shown = ", ".join(a.arg for a in [*positional, *args.kwonlyargs])
    raise ValidationError(
        f"line {node.lineno}: {node.name}({shown}) must take exactly one argument, the record. "
        "Helper functions must start with `_`."
    )


def run_heuristics(
    source: str,
    *,
    records: Sequence[Mapping[str, Any]],
    record_ids: Sequence[Any],
    labels: Sequence[str],
    kind: HeuristicKind,
    function_names: Sequence[str] | None = None,
    token_counts: Sequence[int] | None = None,
    lookup_lists: Mapping[str, Sequence[str]] | None = None,
    time_limit_s: float = 60.0,
    memory_limit_mb: int = 1024,
    max_workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, HeuristicRun]:
    """Run labeling functions over records, each in its own worker process.

    Parameters
    ----------
    source : str
        The Python code defining the functions (see :func:`discover_functions`).
    records : sequence of mapping
        Attribute values per record; each function receives one as a ``dict``.
        Values should be plain Python (numpy and pandas scalars are converted).
    record_ids : sequence
        One id per record, used in error reports.
    labels : sequence of str
        The label names of the task; other names are reported and not stored.
    kind : {"classification", "multilabel", "extraction"}
        Functions return a label or ``None``; for multi-label also a list, tuple or set
        of labels; for extraction they yield ``(label, start, end)`` spans.
    function_names : sequence of str, optional
        Which of the discovered functions to run; all of them by default.
    token_counts : sequence of int, optional
        Extraction only (and required there): the number of tokens of the target
        attribute per record, to check span bounds.
    lookup_lists : mapping of str to sequence of str, optional
        Term lists available in the code as globals named after the list, and as
        ``from knowledge import name``. Names must be Python identifiers.
    time_limit_s : float, default 60
        Wall-clock limit for one function's run over all records, start-up included.
    memory_limit_mb : int, default 1024
        Address-space limit of each worker process (``RLIMIT_AS``): virtual memory,
        so libraries that reserve a lot (numpy, spaCy) count in full.
    max_workers : int, optional
        How many functions run at once; the number of CPUs by default. Each worker
        may use up to ``memory_limit_mb``.
    progress : callable, optional
        Called as ``progress(done, total)`` in the calling thread after each chunk of
        results, where ``total`` is records × functions and a stopped function counts
        as done. Raising from it stops all workers and propagates the exception.

    Returns
    -------
    dict of str to HeuristicRun
        One run per function, in the order of ``function_names`` (or of the source).

    Raises
    ------
    ValidationError
        When the code or the arguments are invalid; nothing has run then.
    LoupeError
        When worker processes cannot be started on this system.
    """
    names = discover_functions(source)
    selected = _select_functions(names, function_names)
    lists = _check_lookup_lists(lookup_lists, names)
    programs = [Program(name=name, source=source, lookup_lists=lists) for name in selected]
    return run_programs(
        programs, records=records, record_ids=record_ids, labels=labels, kind=kind, token_counts=token_counts,
        time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb, max_workers=max_workers, progress=progress,
    )


def check_program(program: Program) -> dict[str, list[str]]:
    """Check a program without running it; return its lookup lists as plain lists.

    Raises
    ------
    ValidationError
        When the code does not parse, does not define ``program.name`` as a labeling
        function, or a lookup list name cannot be used in code.
    """
    names = discover_functions(program.source)
    _select_functions(names, [program.name])
    return _check_lookup_lists(program.lookup_lists, names)


def run_programs(
    programs: Sequence[Program],
    *,
    records: Sequence[Mapping[str, Any]],
    record_ids: Sequence[Any],
    labels: Sequence[str],
    kind: HeuristicKind,
    token_counts: Sequence[int] | None = None,
    time_limit_s: float = 60.0,
    memory_limit_mb: int = 1024,
    max_workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_run: Callable[[HeuristicRun], None] | None = None,
) -> dict[str, HeuristicRun]:
    """Run labeling functions that each come with their own source, in one batch.

    The records are checked and pickled once for the whole batch; each function still
    runs in its own worker process with its own time and memory limit, and fails on its
    own. Options as in :func:`run_heuristics`, and ``on_run(run)``, called in the calling
    thread as soon as each function's run is over (to store it before the others end).

    Returns
    -------
    dict of str to HeuristicRun
        One run per program, in the order given.

    Raises
    ------
    ValidationError
        When a program's code, its name or lookup lists, or the arguments are invalid;
        nothing has run then.
    LoupeError
        When worker processes cannot be started on this system.
    """
    if kind not in ("classification", "multilabel", "extraction"):
        raise ValidationError(f"kind must be 'classification', 'multilabel' or 'extraction', got {kind!r}")
    seen: set[str] = set()
    checked: list[tuple[Program, dict[str, list[str]]]] = []
    for program in programs:
        if program.name in seen:
            raise ValidationError(f"two labeling functions named {program.name!r} in one run; rename one of them")
        seen.add(program.name)
        checked.append((program, check_program(program)))
    records = _check_records(records, record_ids)
    label_set = _check_labels(labels)
    counts = _check_token_counts(kind, token_counts, len(records))
    if not (isinstance(time_limit_s, int | float) and math.isfinite(time_limit_s) and time_limit_s > 0):
        raise ValidationError(f"time_limit_s must be a positive number of seconds, got {time_limit_s!r}")
    if not isinstance(memory_limit_mb, int) or memory_limit_mb < MIN_MEMORY_LIMIT_MB:
        raise ValidationError(
            f"memory_limit_mb must be an int of at least {MIN_MEMORY_LIMIT_MB}, got {memory_limit_mb!r}"
        )
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise ValidationError(f"max_workers must be a positive int or None, got {max_workers!r}")
    if not checked:
        return {}
    if os.name != "posix" or not sys.executable:
        raise LoupeError("running labeling functions needs a POSIX system and a Python executable")

    workers = min(len(checked), max_workers or os.cpu_count() or 1)
    settings = _Settings(
        kind=kind,
        labels=label_set,
        record_ids=record_ids,
        token_counts=counts,
        n_records=len(records),
        time_limit_s=float(time_limit_s),
        memory_bytes=memory_limit_mb * 1024 * 1024,
        memory_limit_mb=memory_limit_mb,
    )
    with tempfile.TemporaryDirectory(prefix="loupe-sandbox-") as tmp:
        payload = Path(tmp) / "records.pickle"
        _write_records(payload, kind=kind, records=records)
        specs: list[_ProgramFile] = []
        files: dict[tuple[str, str], Path] = {}  # programs of one source and lists share a file
        for program, lists in checked:
            key = (program.source, json.dumps(lists, sort_keys=True))
            if key not in files:
                files[key] = Path(tmp) / f"program-{len(files)}.pickle"
                _write_program(files[key], source=program.source, lookup_lists=lists)
            specs.append(_ProgramFile(program.name, files[key], program.source.splitlines()))
        runs = _schedule(
            specs, settings=settings, tmp=Path(tmp), payload=payload, workers=workers, progress=progress, on_run=on_run
        )
    return {program.name: runs[program.name] for program, _ in checked}


# --- validation -----------------------------------------------------------------------------------


def _select_functions(names: list[str], function_names: Sequence[str] | None) -> list[str]:
    if function_names is None:
        return names
    if isinstance(function_names, str):
        raise ValidationError("function_names must be a list of names, not a single str")
    selected = list(function_names)
    repeated = sorted({n for n in selected if selected.count(n) > 1})
    if repeated:
        raise ValidationError(f"function_names lists {', '.join(repeated)} more than once")
    unknown = [n for n in selected if n not in names]
    if unknown:
        raise ValidationError(
            f"no labeling function named {', '.join(map(repr, unknown))} in the code; it defines {', '.join(names)}"
        )
    return selected


def _check_records(records: Sequence[Mapping[str, Any]], record_ids: Sequence[Any]) -> list[dict[str, Any]]:
    if len(records) != len(record_ids):
        raise ValidationError(
            f"records and record_ids must be the same length, but records has {len(records)} "
            f"and record_ids has {len(record_ids)}"
        )
    plain = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ValidationError(
                f"each record must be a dict of attribute values; record {record_ids[i]!r} is a {type(record).__name__}"
            )
        plain.append(record if type(record) is dict else dict(record))
    return plain


def _check_labels(labels: Sequence[str]) -> frozenset[str]:
    if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
        raise ValidationError("labels must be a list of label names (str)")
    return frozenset(labels)


def _check_token_counts(kind: str, token_counts: Sequence[int] | None, n_records: int) -> list[int] | None:
    if kind != "extraction":
        return None
    if token_counts is None:
        raise ValidationError("extraction needs token_counts: the number of tokens of the target attribute")
    counts = list(token_counts)
    if len(counts) != n_records:
        raise ValidationError(
            f"token_counts and records must be the same length, but token_counts has {len(counts)} "
            f"and records has {n_records}"
        )
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ValidationError("token_counts must hold non-negative ints")
    return counts


def _check_lookup_lists(
    lookup_lists: Mapping[str, Sequence[str]] | None, function_names: list[str]
) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for name, terms in (lookup_lists or {}).items():
        usable = isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
        if not usable or name.startswith("__"):
            raise ValidationError(
                f"lookup list name {name!r} cannot be used in code: it must be a Python identifier "
                "(letters, digits and _, not starting with a digit, not a keyword); rename the list"
            )
        if name == KNOWLEDGE_MODULE or name in function_names:
            raise ValidationError(
                f"lookup list name {name!r} clashes with "
                + ("the `knowledge` module" if name == KNOWLEDGE_MODULE else "a labeling function")
                + "; rename one of them"
            )
        if isinstance(terms, str) or not all(isinstance(t, str) for t in terms):
            raise ValidationError(f"lookup list {name!r} must be a list of terms (str)")
        lists[name] = list(terms)
    return lists


# --- payload --------------------------------------------------------------------------------------


_PLAIN_TYPES = (int, float, complex, str, bytes, bool, list, tuple, dict)


class _PlainPickler(pickle.Pickler):
    """Pickle numpy and pandas values as plain Python values.

    The worker would otherwise import numpy or pandas just to unpickle a record:
    slow, and heavy under the memory limit.
    """

    def __init__(self, file: Any, *, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self._protocol = protocol

    def reducer_override(self, obj: Any) -> Any:
        package = type(obj).__module__.partition(".")[0]
        if package not in ("numpy", "pandas"):
            return NotImplemented
        if type(obj).__name__ in ("NaTType", "NAType"):
            return (type(None), ())
        for method in ("to_pydatetime", "to_pytimedelta", "tolist"):
            convert = getattr(obj, method, None)
            if convert is None:
                continue
            plain = convert()
            if plain is None:
                return (type(None), ())
            if type(plain) in _PLAIN_TYPES:
                return (type(plain), (plain,))
            if type(plain).__module__.partition(".")[0] not in ("numpy", "pandas"):
                return plain.__reduce_ex__(self._protocol)
        return NotImplemented


def _write_program(path: Path, *, source: str, lookup_lists: dict[str, list[str]]) -> None:
    with path.open("wb") as file:
        pickle.dump({"source": source, "lookup_lists": lookup_lists}, file, protocol=pickle.HIGHEST_PROTOCOL)


def _write_records(path: Path, *, kind: str, records: list[dict[str, Any]]) -> None:
    chunks = [records[i : i + CHUNK_SIZE] for i in range(0, len(records), CHUNK_SIZE)]
    config = {"kind": kind, "n_chunks": len(chunks)}
    with path.open("wb") as file:
        pickler = _PlainPickler(file, protocol=pickle.HIGHEST_PROTOCOL)
        for part in (config, *chunks):
            try:
                pickler.dump(part)
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                raise ValidationError(
                    f"records must hold plain values (str, numbers, bool, None, lists, dicts, dates): {e}"
                ) from e
            pickler.clear_memo()  # the worker unpickles each part on its own


# --- workers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    kind: str
    labels: frozenset[str]
    record_ids: Sequence[Any]
    token_counts: list[int] | None
    n_records: int
    time_limit_s: float
    memory_bytes: int
    memory_limit_mb: int


class _ProgramFile(NamedTuple):
    name: str
    path: Path
    source_lines: list[str]


class _ProtocolError(Exception):
    """The worker sent something that is not a well-formed result."""


class _Job:
    """One worker process running one function, and what it has reported so far."""

    def __init__(self, program: _ProgramFile, *, index: int, settings: _Settings, tmp: Path, payload: Path) -> None:
        name = program.name
        self.name = name
        self.settings = settings
        self.source_lines = program.source_lines
        self.current_path = tmp / f"current-{index}.bin"
        self.current_path.write_bytes(struct.pack("q", -1))
        self.dump_path = tmp / f"stack-{index}.txt"
        channel_r, channel_w = os.pipe()
        log_r, log_w = os.pipe()
        spec = {
            "function_name": name,
            "payload_path": str(payload),
            "program_path": str(program.path),
            "channel_fd": channel_w,
            "current_path": str(self.current_path),
            "dump_path": str(self.dump_path),
            "memory_bytes": settings.memory_bytes,
            "cpu_seconds": math.ceil(settings.time_limit_s * (os.cpu_count() or 1)) + 5,
            "parent_pid": os.getpid(),
        }
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-u", str(_WORKER_PATH), json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=log_w,
                stderr=subprocess.STDOUT,
                pass_fds=(channel_w,),
                cwd=tmp,
                env={**os.environ, **_WORKER_ENV},
                start_new_session=True,  # its own process group: a timeout kills what it spawned too
            )
        except OSError as e:
            for fd in (channel_r, channel_w, log_r, log_w):
                os.close(fd)
            raise LoupeError(f"cannot start a worker process for labeling functions: {e}") from e
        os.close(channel_w)
        os.close(log_w)
        os.set_blocking(channel_r, False)
        os.set_blocking(log_r, False)
        self.channel_fd: int | None = channel_r
        self.log_fd: int | None = log_r
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(self.proc.pid)
            except OSError:  # kernels before 5.3
                self.pidfd = None
        self.deadline = self.started + settings.time_limit_s
        self.stack_requested = False
        self.timed_out = False
        self.exited = False
        self.buffer = bytearray()
        self.log = bytearray()
        self.log_truncated = False
        self.received = 0
        self.votes: list[Any] = []
        self.report: dict[str, Any] | None = None
        self.done = False
        self.protocol_error: str | None = None
        self.invalid_labels: set[str] = set()
        self.invalid_spans: list[InvalidSpan] = []
        self.n_invalid_spans = 0

    # reading ---------------------------------------------------------------------------------

    def read(self, fd: int) -> bool:
        """Read what is available on ``fd``; False at end of file."""
        for _ in range(64):  # bounded, so one chatty worker cannot starve the others
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                return True
            if not data:
                return False
            if fd == self.log_fd:
                self._keep_log(data)
            else:
                self.buffer += data
                self._parse_frames()
        return True

    def _keep_log(self, data: bytes) -> None:
        self.log += data
        if len(self.log) > _LOG_LIMIT_BYTES:
            del self.log[: len(self.log) - _LOG_LIMIT_BYTES]
            self.log_truncated = True

    def _parse_frames(self) -> None:
        if self.protocol_error:
            self.buffer.clear()
            return
        offset = 0
        try:
            while len(self.buffer) - offset >= _FRAME.size:
                (size,) = _FRAME.unpack_from(self.buffer, offset)
                if size > _MAX_FRAME_BYTES:
                    raise _ProtocolError(f"a result message of {size} bytes")
                end = offset + _FRAME.size + size
                if len(self.buffer) < end:
                    break
                try:
                    message = json.loads(self.buffer[offset + _FRAME.size : end])
                except ValueError as e:
                    raise _ProtocolError(f"a message that is not JSON ({e})") from e
                offset = end
                self._handle(message)
        except _ProtocolError as e:
            self.protocol_error = f"the worker process sent malformed results: {e}"
            self.kill()
        del self.buffer[:offset]

    def _handle(self, message: Any) -> None:
        if not isinstance(message, dict) or self.done or self.report is not None:
            raise _ProtocolError("a message after the end of the run")
        tag = message.get("t")
        if tag == "votes":
            self._accept_votes(message.get("start"), message.get("votes"))
        elif tag == "error":
            self.report = message
        elif tag == "done":
            self.done = True
        else:
            raise _ProtocolError(f"an unknown message {str(tag)[:40]!r}")

    def _accept_votes(self, start: Any, votes: Any) -> None:
        s = self.settings
        if start != self.received or not isinstance(votes, list) or start + len(votes) > s.n_records:
            raise _ProtocolError("results out of order")
        if s.kind == "classification":
            try:
                emitted = set(votes)
            except TypeError as e:
                raise _ProtocolError("a vote that is not a label name") from e
            emitted.discard(None)
            unknown = emitted - s.labels
            if any(type(v) is not str for v in unknown):
                raise _ProtocolError("a vote that is not a label name")
            if unknown:
                self.invalid_labels |= unknown
                votes = [None if v in unknown else v for v in votes]
            self.votes.extend(votes)
        elif s.kind == "multilabel":
            self.votes.extend(self._accept_label_lists(votes))
        else:
            assert s.token_counts is not None  # checked by run_heuristics for extraction
            for offset, spans in enumerate(votes):
                self.votes.append(self._accept_spans(start + offset, spans, s.token_counts[start + offset]))
        self.received += len(votes)

    def _accept_label_lists(self, votes: list[Any]) -> list[list[str] | None]:
        """Multi-label votes as sorted lists of the task's labels; unknown names reported and dropped."""
        kept: list[list[str] | None] = []
        for vote in votes:
            names = [vote] if isinstance(vote, str) else vote
            if names is None:
                kept.append(None)
                continue
            if not isinstance(names, list) or any(type(v) is not str for v in names):
                raise _ProtocolError("a vote that is not a label name or a list of them")
            unknown = {v for v in names if v not in self.settings.labels}
            self.invalid_labels |= unknown
            known = sorted({v for v in names if v not in unknown})
            kept.append(known or None)
        return kept

    def _accept_spans(self, index: int, spans: Any, n_tokens: int) -> list[Span]:
        if not isinstance(spans, list):
            raise _ProtocolError("spans that are not a list")
        kept: list[Span] = []
        for span in spans:
            if not (isinstance(span, list) and len(span) == 3):
                raise _ProtocolError("a span that is not (label, start, end)")
            label, start, end = span
            if type(label) is not str or type(start) is not int or type(end) is not int:
                raise _ProtocolError("a span that is not (label, start, end)")
            if label not in self.settings.labels:
                self.invalid_labels.add(label)
            elif 0 <= start < end <= n_tokens:
                kept.append((label, start, end))
            else:
                self.n_invalid_spans += 1
                if len(self.invalid_spans) < _MAX_INVALID_SPAN_EXAMPLES:
                    self.invalid_spans.append(InvalidSpan(self.settings.record_ids[index], label, start, end))
        return kept

    # lifecycle -------------------------------------------------------------------------------

    def on_deadline(self, now: float) -> None:
        """At the limit, ask for the stack (SIGUSR1); after a short grace, kill."""
        self.timed_out = True
        if not self.stack_requested:
            self.stack_requested = True
            self.deadline = now + _DUMP_GRACE_S
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)
        else:
            self.kill()

    def kill(self) -> None:
        """Kill the worker's whole process group (it is not reaped yet, so its id is ours)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def has_exited(self) -> bool:
        if self.pidfd is not None:
            return self.exited
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def close(self) -> HeuristicRun:
        """Collect the exited worker and turn what it reported into a run."""
        for fd in (self.channel_fd, self.log_fd):
            if fd is not None:
                self.read(fd)
        self.kill()  # whatever the function left running in its process group
        self.proc.wait()
        for fd in (self.channel_fd, self.log_fd, self.pidfd):
            if fd is not None:
                os.close(fd)
        self.channel_fd = self.log_fd = self.pidfd = None
        return self._outcome(time.monotonic() - self.started)

    def _outcome(self, duration: float) -> HeuristicRun:
        s = self.settings
        run = HeuristicRun(
            name=self.name,
            state="failed",
            invalid_labels=self.invalid_labels,
            invalid_spans=self.invalid_spans,
            n_invalid_spans=self.n_invalid_spans,
            duration_s=duration,
            logs=("[…]\n" if self.log_truncated else "") + self.log.decode("utf-8", errors="replace"),
        )
        if self.done and self.received == s.n_records and not self.protocol_error:
            run.state = "finished"
            run.votes = self.votes
            return run
        if self.protocol_error:
            run.error = self.protocol_error
            return run
        where = self._stack_line()
        record_index = self._current_index()
        loading = False
        if self.report is not None and not self.timed_out:
            run.state = "memory" if self.report.get("state") == "memory" else "failed"
            where = _text(self.report.get("where"), 300) or None
            index = self.report.get("index")
            record_index = index if type(index) is int and 0 <= index < s.n_records else None
            loading = self.report.get("phase") == "load"
            exc_type = _text(self.report.get("exc_type"), 100)
            message = _text(self.report.get("message"), 1000)
            head = f"{exc_type}: {message}" if message else exc_type
            if run.state == "memory":
                head += f", over the memory limit of {s.memory_limit_mb} MB"
        elif self.timed_out or self.proc.returncode == -signal.SIGXCPU:
            run.state = "timeout"
            head = f"timed out: the run over {s.n_records} records exceeded the time limit of {s.time_limit_s:g} s"
        else:
            head = _exit_description(self.proc.returncode)
            if self.proc.returncode is not None and self.proc.returncode < 0 and _OUT_OF_MEMORY.search(self.log):
                # Native code (C++ new, a failed malloc) aborts instead of raising MemoryError.
                run.state = "memory"
                head += f" running out of memory, over the memory limit of {s.memory_limit_mb} MB"
        run.error = head + (f" ({where})" if where else "")
        if loading:
            run.error += " — while loading the code, before any record"
        elif record_index is not None:
            run.failed_record_id = s.record_ids[record_index]
            run.error += f" on record {run.failed_record_id!r}"
        return run

    def _current_index(self) -> int | None:
        try:
            (index,) = struct.unpack("q", self.current_path.read_bytes()[:8])
        except (OSError, struct.error):
            return None
        return index if 0 <= index < self.settings.n_records else None

    def _stack_line(self) -> str | None:
        """The innermost line of user code in the stack faulthandler wrote, if any."""
        try:
            dump = self.dump_path.read_text(errors="replace")
        except OSError:
            return None
        match = _DUMP_LINE.search(dump)  # faulthandler lists the innermost frame first
        if not match:
            return None
        line = int(match[1])
        lines = self.source_lines
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return f"line {line} in {match[2]}" + (f": `{text}`" if text else "")


def _text(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _exit_description(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGKILL:
            return f"the worker process was killed ({name}), possibly by the system's out-of-memory killer"
        return f"the worker process crashed ({name})"
    return (
        f"the worker process exited with code {returncode} without reporting a result "
        "(os._exit(), or a crash in native code)"
    )


def _schedule(
    programs: list[_ProgramFile],
    *,
    settings: _Settings,
    tmp: Path,
    payload: Path,
    workers: int,
    progress: Callable[[int, int], None] | None,
    on_run: Callable[[HeuristicRun], None] | None = None,
) -> dict[str, HeuristicRun]:
    """Run the functions, ``workers`` at a time, multiplexing their pipes in this thread."""
    pending = deque(enumerate(programs))
    active: list[_Job] = []
    runs: dict[str, HeuristicRun] = {}
    total = settings.n_records * len(programs)
    finished_records = 0
    reported = -1
    selector = selectors.DefaultSelector()
    try:
        while pending or active:
            while pending and len(active) < workers:
                index, program = pending.popleft()
                job = _Job(program, index=index, settings=settings, tmp=tmp, payload=payload)
                active.append(job)
                for fd in (job.channel_fd, job.log_fd, job.pidfd):
                    if fd is not None:
                        selector.register(fd, selectors.EVENT_READ, job)
            if progress is not None:
                done = finished_records + sum(job.received for job in active)
                if done != reported:
                    reported = done
                    progress(done, total)
            now = time.monotonic()
            timeout = max(0.0, min(job.deadline for job in active) - now)
            if any(job.pidfd is None for job in active):
                timeout = min(timeout, _POLL_S)
            for key, _ in selector.select(timeout):
                job = key.data
                if key.fd == job.pidfd:
                    job.exited = True
                    selector.unregister(key.fd)
                elif not job.read(key.fd):  # end of file
                    selector.unregister(key.fd)
            now = time.monotonic()
            for job in list(active):
                if job.has_exited():
                    for fd in (job.channel_fd, job.log_fd, job.pidfd):
                        if fd is not None and fd in selector.get_map():
                            selector.unregister(fd)
                    runs[job.name] = job.close()
                    active.remove(job)
                    finished_records += settings.n_records
                    if on_run is not None:
                        on_run(runs[job.name])
                elif now >= job.deadline:
                    job.on_deadline(now)
        if progress is not None and reported != total:
            progress(total, total)
    finally:
        for job in active:  # only when interrupted: the progress callback raised, or Ctrl-C
            job.kill()
            job.close()
        selector.close()
    return runs
