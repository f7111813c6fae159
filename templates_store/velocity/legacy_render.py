"""Legacy (airspeed) renders in a child process with limits.

airspeed, the legacy engine, has no limits: a tenant's template can run for minutes
(`#set($s = "$s$s")` in a loop, a macro calling itself twice per level, a `matches()` with a
catastrophic regex) or take gigabytes, and it hands out Python internals (`$x.__class__`).
Every render of a tenant-controlled legacy template (the verifier, the admin comparison, the
legacy import) goes through a LegacyRenderer instead:

- the renders run in a child Python process (`python -I -S legacy_child.py`: the standard
  library and airspeed, nothing of the application) with an empty environment, no inherited
  file descriptors, its own process group, RLIMIT_AS (memory), RLIMIT_CPU (per case, and a
  lifetime cap after which the child retires) and no core files;
- the parent sends one case at a time and waits for its result with a wall-clock deadline:
  past it, it kills the child's process group (and reaps it), so it never hangs;
- a case that exceeds a limit is recorded as "legacy render exceeded limits: <which>"
  (time, cpu, memory, output, or the way the child died); the next case runs in a fresh child;
- otherwise the result is exactly what airspeed gave: its text, or its error as
  "ClassName: message" (like the legacy gateway, any error is a `50000 system error`).

A renderer keeps its child between calls: make one per batch (one template's cases, one admin
page) so that nothing a template does in the child outlives the batch. Not thread-safe: one
renderer per thread.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .legacy_child import FRAME, MEMORY_EXIT

__all__ = [
    "LegacyLimits",
    "LegacyOutcome",
    "LegacyRenderError",
    "LegacyRenderer",
    "limit_message",
]

_CHILD_SCRIPT = str(Path(__file__).with_name("legacy_child.py"))
_READ_CHUNK = 1 << 16


def _airspeed_path() -> str:
    """The directory airspeed is imported from (the child runs without site-packages)."""
    spec = importlib.util.find_spec("airspeed")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("airspeed is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


@dataclass(frozen=True)
class LegacyLimits:
    """Limits of legacy renders (per case unless said otherwise)."""

    # wall clock, enforced by the parent: past it the child is killed
    seconds: float = 2.0
    # CPU seconds (RLIMIT_CPU, whole seconds): the child's soft limit, raised before each case
    cpu_seconds: int = 2
    # address space of the child (RLIMIT_AS)
    memory_bytes: int = 512 * 1024 * 1024
    # characters of one rendered text
    max_output_chars: int = 1_000_000
    # CPU seconds one child may use in all (RLIMIT_CPU hard limit); it retires before that
    child_cpu_seconds: int = 300
    # a child must be ready (Python started, airspeed imported) within this
    startup_seconds: float = 30.0
    # after this many cases of one source exceeded limits in one call, its remaining cases are
    # recorded as exceeding them without running (None: run every case)
    limit_hits_per_source: int | None = 3


@dataclass(frozen=True)
class LegacyOutcome:
    """What airspeed gave for one case: its text, or its error; `limit` says which limit the
    render exceeded (then `error` is limit_message(limit))."""

    output: str | None
    error: str | None = None
    limit: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def limit_message(limit: str) -> str:
    return f"legacy render exceeded limits: {limit}"


def _limit(limit: str) -> LegacyOutcome:
    return LegacyOutcome(None, limit_message(limit), limit)


class LegacyRenderError(Exception):
    """A legacy render failed: airspeed's error, or a limit (`outcome.limit`)."""

    def __init__(self, outcome: LegacyOutcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class _ChildGone(Exception):
    """The child died or stopped answering; `limit` says how (its process is reaped)."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


class _Child:
    """One child process and its pipes: started by the constructor, usable once ready()."""

    def __init__(self, limits: LegacyLimits) -> None:
        self.limits = limits
        self.parent_pid = os.getpid()
        self.started_at = time.monotonic()
        settings = {
            "memory_bytes": limits.memory_bytes,
            "cpu_seconds": limits.cpu_seconds,
            "child_cpu_seconds": limits.child_cpu_seconds,
            "max_output_chars": limits.max_output_chars,
            "airspeed_path": _airspeed_path(),
        }
        # -I: no environment variables, user site or script directory; -S: no site module
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-I", "-S", _CHILD_SCRIPT, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        self.killed = False
        self.retired = False
        self.is_ready = False
        self._buffer = b""
        os.set_blocking(self.process.stdin.fileno(), False)  # type: ignore[union-attr]

    def ready(self) -> _Child:
        """Waits for the child's first line (Python started, airspeed imported)."""
        if not self.is_ready:
            try:
                ready = self._read_line(self.started_at + self.limits.startup_seconds)
            except _ChildGone as gone:
                raise RuntimeError(
                    f"the legacy render process did not start ({gone.limit})"
                ) from None
            if ready != {"ready": True}:
                self.kill()
                raise RuntimeError("the legacy render process did not start (unexpected answer)")
            self.is_ready = True
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def render(self, source: str, params: Any) -> LegacyOutcome:
        deadline = time.monotonic() + self.limits.seconds
        case = pickle.dumps((source, params), protocol=pickle.HIGHEST_PROTOCOL)
        self._write(FRAME.pack(len(case)) + case, deadline)
        answer = self._read_line(deadline)
        if answer.get("retire"):
            self.retired = True
        if "limit" in answer:
            return _limit(str(answer["limit"]))
        if "error" in answer:
            return LegacyOutcome(None, str(answer["error"]))
        output = answer.get("output")
        if not isinstance(output, str):
            self.kill()
            raise _ChildGone("crashed (unexpected answer)")
        return LegacyOutcome(output)

    def _write(self, data: bytes, deadline: float) -> None:
        fd = self.process.stdin.fileno()  # type: ignore[union-attr]
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise _ChildGone("time")
            _, writable, _ = select.select([], [fd], [], remaining)
            if not writable:
                continue
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise _ChildGone(self._death()) from None
            view = view[written:]

    def _read_line(self, deadline: float) -> dict[str, Any]:
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        # a JSON line of the longest text allowed (each character escaped) and its framing
        max_line = 6 * self.limits.max_output_chars + 4096
        while b"\n" not in self._buffer:
            # past the deadline, one last look: what is already there counts (a spare child
            # started long ago is ready, its first line waiting)
            remaining = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                if time.monotonic() >= deadline:
                    self.kill()
                    raise _ChildGone("time")
                continue
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                raise _ChildGone(self._death())
            self._buffer += chunk
            if len(self._buffer) > max_line:
                self.kill()
                raise _ChildGone("output")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.kill()
            raise _ChildGone("crashed (unexpected answer)")
        return answer

    def _death(self) -> str:
        """Which limit the child's death means (the child is reaped)."""
        returncode = self._reap()
        if returncode == -signal.SIGXCPU:
            return "cpu"
        if returncode == MEMORY_EXIT:
            return "memory"
        if returncode is not None and returncode < 0:
            return f"crashed ({signal.Signals(-returncode).name})"
        return f"crashed (exit status {returncode})"

    def kill(self) -> None:
        """Kill the child and anything it started (its process group), and reap it."""
        if self.process.returncode is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> int | None:
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self.retired


# One child started ahead per set of limits: a renderer takes it and starts the next, so the
# interpreter's start overlaps the caller's work (a spare has never rendered anything).
_spares: dict[LegacyLimits, _Child] = {}
_spares_lock = threading.Lock()


def _take_child(limits: LegacyLimits) -> _Child:
    with _spares_lock:
        child = _spares.pop(limits, None)
        if child is not None and (child.parent_pid != os.getpid() or not child.alive):
            child = None  # inherited through a fork, or gone: not ours to use
        _spares[limits] = _Child(limits)
    if child is None:
        child = _Child(limits)
    return child.ready()


@atexit.register
def _kill_spares() -> None:
    with _spares_lock:
        spares = list(_spares.values())
        _spares.clear()
    for child in spares:
        if child.parent_pid == os.getpid():
            child.kill()


class LegacyRenderer:
    """Renders legacy templates in a child process with `limits` (see the module doc)."""

    def __init__(self, limits: LegacyLimits | None = None) -> None:
        self.limits = limits or LegacyLimits()
        self._child: _Child | None = None

    def __enter__(self) -> LegacyRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    @property
    def child_pid(self) -> int | None:
        """The running child's process id, if one is running."""
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        """Stop the child (it also exits by itself when its input closes)."""
        child, self._child = getattr(self, "_child", None), None
        if child is not None:
            child.kill()

    def render(self, source: str, params: Any) -> LegacyOutcome:
        """One case: `airspeed.Template(source).merge(copy of params)`, "" for an empty source."""
        return self.render_many([(source, params)])[0]

    def render_many(self, cases: Iterable[tuple[str, Any]]) -> list[LegacyOutcome]:
        """Each case in turn, in this renderer's child (a fresh one after a limit hit)."""
        outcomes = []
        hits: dict[str, int] = {}
        cap = self.limits.limit_hits_per_source
        for source, params in cases:
            if source == "":
                outcomes.append(LegacyOutcome(""))
                continue
            if cap is not None and hits.get(source, 0) >= cap:
                outcomes.append(_limit(f"skipped after {cap} cases of this template exceeded them"))
                continue
            outcome = self._render_one(source, params)
            if outcome.limit is not None:
                hits[source] = hits.get(source, 0) + 1
            outcomes.append(outcome)
        return outcomes

    def _render_one(self, source: str, params: Any) -> LegacyOutcome:
        if self._child is None or not self._child.alive:
            self.close()
            self._child = _take_child(self.limits)
        child = self._child
        try:
            outcome = child.render(source, params)
        except _ChildGone as gone:
            self._child = None
            child.kill()
            return _limit(gone.limit)
        if outcome.limit is not None or child.retired:
            # a fresh child for what follows: this one may be out of memory or CPU time
            self.close()
        return outcome
