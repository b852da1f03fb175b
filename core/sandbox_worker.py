"""Worker process that runs one labeling function over all records.

Started by :func:`core.sandbox.run_heuristics` as ``python -I -u sandbox_worker.py JOB``
(by path, in isolated mode), never imported by the app. It uses the standard library
only, so it starts in a few tens of milliseconds and never loads torch, streamlit or
the database layer.

What the worker does, in order:

1. apply the resource limits (address space, CPU time backstop) and ask the kernel to
   kill it if the app dies;
2. execute the user's source as a module, with the lookup lists as module globals and
   as attributes of an importable ``knowledge`` module (refinery's spelling);
3. read the records, pickled by the app in chunks, and call the function on each;
4. send results back as length-prefixed JSON frames on a private pipe (never pickle:
   the app must not unpickle anything user code could have written).

While a record runs, its index sits in a small shared file, so the app can name the
record even when the process dies without a word (``os._exit``, a segfault, a kill on
timeout). ``faulthandler`` writes the Python stack to a file on a crash and on
``SIGUSR1``, which the app sends at the time limit to learn where the code was stuck.
User output (``print``) goes to stdout/stderr, which the app keeps as the run's log.

This is isolation against mistakes (loops, crashes, huge allocations, ``sys.exit``),
not a security boundary against hostile code.
"""

from __future__ import annotations

import contextlib
import faulthandler
import inspect
import json
import mmap
import operator
import os
import pickle
import resource
import signal
import struct
import sys
import types
from typing import Any

#: File name under which the user's source is compiled; tracebacks are filtered on it.
SOURCE_FILENAME = "<labeling functions>"
#: Name of the module that holds the user's code (registered in ``sys.modules``).
MODULE_NAME = "labeling_functions"
#: refinery imports lookup lists from this module: ``from knowledge import my_list``.
KNOWLEDGE_MODULE = "knowledge"

_FRAME = struct.Struct("!I")
_MESSAGE_LIMIT = 1000
# Memory released on MemoryError so that reporting the error cannot fail for lack of it.
_RESERVE_BYTES = 4 * 1024 * 1024


class _Failure(Exception):
    """A labeling function broke the contract; carries the report to send."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(report.get("message", ""))
        self.report = report


class _Channel:
    """Length-prefixed JSON frames on the private pipe to the app."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: dict[str, Any]) -> None:
        # ASCII escapes keep lone surrogates a user string may hold encodable.
        data = json.dumps(message, separators=(",", ":")).encode("ascii")
        view = memoryview(_FRAME.pack(len(data)) + data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _describe(exc: BaseException, source_lines: list[str]) -> dict[str, Any]:
    """Exception type, message and the innermost line of user code it went through."""
    try:
        message = str(exc)
    except Exception as str_error:  # a user-defined __str__ may itself raise
        message = f"<unprintable message: {type(str_error).__name__}>"
    where = None
    tb = exc.__traceback__
    while tb is not None:  # innermost frame of the user's file wins
        code = tb.tb_frame.f_code
        if code.co_filename == SOURCE_FILENAME:
            line = tb.tb_lineno
            text = source_lines[line - 1].strip() if 0 < line <= len(source_lines) else ""
            where = f"line {line} in {code.co_name}" + (f": `{text}`" if text else "")
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename == SOURCE_FILENAME and exc.lineno:
        where = f"line {exc.lineno}"
    return {"exc_type": type(exc).__name__, "message": _short(message), "where": where}


def _contract_error(message: str) -> _Failure:
    return _Failure({"exc_type": "TypeError", "message": _short(message), "where": None})


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a user-defined __repr__ may raise; the type is enough then
        text = "<unrepresentable>"
    if len(text) > 80:
        text = text[:79] + "…"
    return f"{text} ({type(value).__name__})"


def _as_label(name: str, value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    hint = ""
    if inspect.isgenerator(value):
        hint = " (a generator: use `return`, not `yield`, for classification)"
    raise _contract_error(
        f"{name} returned {_show(value)}{hint}; a labeling function returns a label name (str) or None. "
        "Helper functions must start with `_`",
    )


def _as_labels(name: str, value: Any) -> str | list[str] | None:
    """Multi-label: one label name, or a list, tuple or set of them (sorted, without repeats)."""
    if value is None or isinstance(value, str):
        return _as_label(name, value)
    if isinstance(value, list | tuple | set | frozenset):
        if all(isinstance(item, str) for item in value):
            return sorted({str(item) for item in value})
        wrong = next(item for item in value if not isinstance(item, str))
        raise _contract_error(
            f"{name} returned {_show(value)}, which holds {_show(wrong)}; a multi-label function returns "
            "a label name, a list of label names (str), or None",
        )
    hint = " (a generator: use `return`, not `yield`, for classification)" if inspect.isgenerator(value) else ""
    raise _contract_error(
        f"{name} returned {_show(value)}{hint}; a multi-label function returns a label name, a list of label "
        "names (str), or None. Helper functions must start with `_`",
    )


def _as_index(name: str, value: Any, item: Any) -> int:
    if isinstance(value, bool):
        raise _contract_error(f"{name} yielded {_show(item)}; start and end must be integers")
    try:
        return operator.index(value)
    except TypeError:
        raise _contract_error(f"{name} yielded {_show(item)}; start and end must be integers") from None


def _as_spans(name: str, result: Any) -> list[list[Any]]:
    if result is None or isinstance(result, str | bytes | dict):
        raise _contract_error(
            f"{name} returned {_show(result)}; an extraction function yields (label, start, end) "
            "token spans (use `yield`)",
        )
    try:
        iterator = iter(result)
    except TypeError:
        raise _contract_error(
            f"{name} returned {_show(result)}; an extraction function yields (label, start, end) "
            "token spans (use `yield`)",
        ) from None
    spans = []
    for item in iterator:
        if not isinstance(item, tuple | list) or len(item) != 3:
            raise _contract_error(f"{name} yielded {_show(item)}; expected (label, start, end)")
        label, start, end = item
        if not isinstance(label, str):
            raise _contract_error(f"{name} yielded {_show(item)}; the label must be a str")
        spans.append([str(label), _as_index(name, start, item), _as_index(name, end, item)])
    return spans


def _apply_limits(memory_bytes: int, cpu_seconds: int, parent_pid: int) -> None:
    _, as_hard = resource.getrlimit(resource.RLIMIT_AS)
    if as_hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, as_hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # Backstop only: the app enforces the wall-clock limit and kills the process group.
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    if cpu_hard == resource.RLIM_INFINITY or cpu_seconds < cpu_hard:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_hard))
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the app
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the app died before prctl took effect
        os._exit(70)


def _load_module(source: str, lookup_lists: dict[str, list[str]]) -> dict[str, Any]:
    knowledge = types.ModuleType(KNOWLEDGE_MODULE)
    for list_name, terms in lookup_lists.items():
        setattr(knowledge, list_name, terms)
    sys.modules[KNOWLEDGE_MODULE] = knowledge
    module = types.ModuleType(MODULE_NAME)
    module.__file__ = SOURCE_FILENAME
    module.__dict__.update(lookup_lists)
    sys.modules[MODULE_NAME] = module  # dataclasses, typing and pickle look the module up
    # dont_inherit: this file's `from __future__` imports must not change the user's code.
    exec(compile(source, SOURCE_FILENAME, "exec", dont_inherit=True), module.__dict__)
    return module.__dict__


def _run(job: dict[str, Any], channel: _Channel, current: memoryview) -> None:
    name: str = job["function_name"]
    with open(job["program_path"], "rb") as program_file:
        program = pickle.load(program_file)
    with open(job["payload_path"], "rb") as payload:
        config = pickle.load(payload)
        source: str = program["source"]
        source_lines = source.splitlines()
        kind: str = config["kind"]
        reserve = bytearray(_RESERVE_BYTES)
        phase = "load"
        try:
            namespace = _load_module(source, program["lookup_lists"])
            function = namespace.get(name)
            if not callable(function):
                raise _contract_error(f"{name} is not a function after running the file")
            is_generator = inspect.isgeneratorfunction(inspect.unwrap(function))
            if kind in ("classification", "multilabel") and is_generator:
                raise _contract_error(
                    f"{name} uses `yield`, which makes it an extraction function, but the task is a "
                    "classification: return a label name or None instead",
                )
            if kind == "extraction" and not is_generator:
                raise _contract_error(
                    f"{name} does not use `yield`, but the task is an extraction: yield "
                    "(label, start, end) token spans",
                )
            convert = {"classification": _as_label, "multilabel": _as_labels}.get(kind, _as_spans)
            phase = "run"
            start = 0
            for _ in range(config["n_chunks"]):
                records = pickle.load(payload)
                votes = []
                index = start
                for record in records:
                    current[0] = index
                    votes.append(convert(name, function(record)))
                    index += 1
                channel.send({"t": "votes", "start": start, "votes": votes})
                start = index
        except _Failure as failure:
            report = failure.report
            state = "failed"
        except MemoryError as exc:
            del reserve
            report = _describe(exc, source_lines)
            exc.__traceback__ = None
            state = "memory"
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: user code raised them
            report = _describe(exc, source_lines)
            state = "failed"
        else:
            channel.send({"t": "done"})
            return
    failed_index = current[0] if phase == "run" else None
    channel.send({"t": "error", "state": state, "phase": phase, "index": failed_index, **report})


def main(argv: list[str]) -> None:
    """Run the job described by the JSON in ``argv[1]`` and exit without cleanup."""
    job = json.loads(argv[1])
    _apply_limits(job["memory_bytes"], job["cpu_seconds"], job["parent_pid"])
    dump = open(job["dump_path"], "w")  # noqa: SIM115 - must stay open for faulthandler
    faulthandler.enable(file=dump)
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=False)
    fd = os.open(job["current_path"], os.O_RDWR)
    shared = mmap.mmap(fd, 8)
    current = memoryview(shared).cast("q")
    try:
        _run(job, _Channel(job["channel_fd"]), current)
    finally:
        for stream in (sys.stdout, sys.stderr):
            # User code may have closed or replaced the stream.
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream.flush()
        # Skip interpreter shutdown: user atexit hooks and threads must not outlive the run.
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
