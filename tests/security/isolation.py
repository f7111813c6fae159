"""Compiles and renders one template in a forked child process, watched from outside.

- A hang is cut by a wall-clock guard (the child is killed): a guard against hangs only, never a
  speed assertion.
- The child's address space is capped a few GiB above what it inherited, so a runaway template
  cannot take the machine. Hitting the cap shows as a MemoryError in the outcome, which the tests
  treat as a failure: a budget "checked before allocation" never lets Python run out of memory.
- tracemalloc measures the peak of what the conversion, compilation and render allocated
  (when the job asks for it).
- Whatever a payload manages to do inside the child (patch a module, say) dies with the child;
  only a file it creates (the marker) outlives it.

No Django is needed: the child uses the engine contract alone
(`templates_store.engines.get_engine`, `templates_store.sandbox.errors`).
"""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import resource
import time
import traceback
import tracemalloc
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

GUARD_SECONDS = 20.0
ADDRESS_SPACE_HEADROOM = 4 << 30
# the text sent back to the test: enough to check any output the engine allows
TEXT_CAP = 2_000_000


@dataclass(frozen=True)
class Job:
    source: str
    env: str = "jinja2"  # "jinja2" (tenant-authored) | "velocity" (converted legacy)
    data: Any = None
    autoescape: bool = False
    # `source` is Velocity: convert() it first and render what the converter produced
    velocity_source: bool = False
    compile_only: bool = False
    # tracemalloc makes compiling several times slower: only the memory tests turn it on
    measure_memory: bool = False


@dataclass(frozen=True)
class Outcome:
    # "returned" | "raised" | "unconverted" (convert() gave no source) | "timeout" | "crashed"
    status: str
    stage: str = ""  # what was running when it ended: "setup" | "convert" | "compile" | "render"
    text: str | None = None
    length: int = 0
    error_type: str = ""
    error_message: str = ""
    render_error: bool = False  # a TemplateRenderError (the contract's base class)
    security_error: bool = False
    limit_error: bool = False
    syntax_error: bool = False
    memory_error: bool = False  # a MemoryError in the error's chain: the address-space cap was hit
    peak_bytes: int = 0
    seconds: float = 0.0
    max_output_chars: int = 0
    detail: str = ""  # the traceback of an error outside the contract, or why the child died

    def describe(self) -> str:
        """One paragraph for an assertion message."""
        head = f"{self.status} at {self.stage or '?'} after {self.seconds:.2f}s"
        if self.status == "raised":
            head += f": {self.error_type}: {self.error_message[:300]}"
        elif self.status == "returned":
            head += f": {self.length} chars: {(self.text or '')[:300]!r}"
        head += f" (peak {self.peak_bytes / 2**20:.1f} MiB)"
        if self.detail:
            head += "\n" + self.detail[-3000:]
        return head


# What each child would otherwise redo (and measure): imports, building the engine, Jinja's
# first compilation. Done once in the test process, inherited by every fork.
_WARM_UP = {
    "jinja2": "{% macro m(a) %}{{ a|upper }}{% endmacro %}{% for i in [1] %}{{ m(i) }}{% endfor %}",
    "velocity": '#macro(m $a)$a.length()#end#foreach($i in [1..2])#set($x = "$i")#m($x)#end',
}
_warmed: set[tuple[str, bool]] = set()


def _warm_up(env: str, autoescape: bool) -> None:
    if (env, autoescape) in _warmed:
        return
    _warmed.add((env, autoescape))
    try:
        from templates_store.engines import get_engine
        from templates_store.velocity.converter import convert

        engine = get_engine(env, autoescape=autoescape)
        source = _WARM_UP.get(env, _WARM_UP["jinja2"])
        if env == "velocity":
            source = convert(source).source or ""
        engine.render(source, {})
    except Exception:  # noqa: BLE001, S110 - the child runs the same calls and reports errors
        pass


def run_isolated(job: Job, guard_seconds: float = GUARD_SECONDS) -> Outcome:
    """Runs `job` in a forked child; waits at most `guard_seconds` for it."""
    return run_isolated_each([job], guard_seconds)[0]


def run_isolated_each(jobs: list[Job], guard_seconds: float = GUARD_SECONDS) -> list[Outcome]:
    """Runs `jobs` one after the other in one forked child (one fork for variants of the same
    template); each answers separately, within `guard_seconds` of the previous answer. After a
    hang or a crash the jobs left are reported as not run."""
    for job in jobs:
        _warm_up(job.env, job.autoescape)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, jobs), daemon=True)
    # frozen objects are not scanned by the child's collector: fewer copy-on-write page faults
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    sender.close()
    outcomes: list[Outcome] = []
    try:
        while len(outcomes) < len(jobs):
            waited = time.monotonic()
            if not receiver.poll(guard_seconds):
                outcomes.append(
                    Outcome(
                        status="timeout",
                        seconds=time.monotonic() - waited,
                        detail=f"no answer within the {guard_seconds:.0f}s guard: killed",
                    )
                )
                break
            try:
                outcomes.append(Outcome(**receiver.recv()))
            except EOFError:
                child.join(5)
                outcomes.append(
                    Outcome(
                        status="crashed",
                        seconds=time.monotonic() - waited,
                        detail=f"the child died without an answer (exit code {child.exitcode})",
                    )
                )
                break
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receiver.close()
    not_run = Outcome(status="crashed", detail="not run: an earlier job of the child failed")
    return outcomes + [not_run] * (len(jobs) - len(outcomes))


def _cap_address_space() -> None:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                current = int(line.split()[1]) * 1024
                break
        else:  # pragma: no cover - Linux always reports VmSize
            return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = current + ADDRESS_SPACE_HEADROOM
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _child_main(sender: Connection, jobs: list[Job]) -> None:
    _cap_address_space()
    for job in jobs:
        sender.send(_run_job(job))
    sender.close()


def _run_job(job: Job) -> dict[str, Any]:
    report: dict[str, Any] = {"status": "raised", "stage": "setup"}
    started = time.perf_counter()
    errors: Any = None
    try:
        from templates_store.engines import get_engine

        errors = importlib.import_module("templates_store.sandbox.errors")
        engine = get_engine(job.env, autoescape=job.autoescape)
        report["max_output_chars"] = engine.limits.max_output_chars
        if job.measure_memory:
            tracemalloc.start()
        started = time.perf_counter()
        source = job.source
        if job.velocity_source:
            from templates_store.velocity.converter import convert

            report["stage"] = "convert"
            converted = convert(source).source
            if converted is None:
                report["status"] = "unconverted"
                return report
            source = converted
        report["stage"] = "compile"
        engine.compile(source)
        if not job.compile_only:
            report["stage"] = "render"
            text = engine.render(source, {} if job.data is None else job.data)
            report["text"] = text[:TEXT_CAP] if isinstance(text, str) else repr(text)[:TEXT_CAP]
            report["length"] = len(text) if isinstance(text, str) else -1
        report["status"] = "returned"
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the test
        report["status"] = "raised"
        report["error_type"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        report["error_message"] = str(exc)[:2000]
        report["memory_error"] = any(isinstance(e, MemoryError) for e in _chain(exc))
        if errors is not None:
            report["render_error"] = isinstance(exc, errors.TemplateRenderError)
            report["security_error"] = isinstance(exc, errors.TemplateSecurityError)
            report["limit_error"] = isinstance(exc, errors.TemplateLimitError)
            report["syntax_error"] = isinstance(exc, errors.TemplateSyntaxError)
        if not report.get("render_error") or report["memory_error"]:
            report["detail"] = "".join(traceback.format_exception(exc))[-6000:]
    finally:
        report["seconds"] = time.perf_counter() - started
        if tracemalloc.is_tracing():
            report["peak_bytes"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return report
