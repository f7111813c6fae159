"""airspeed (the legacy engine) in a sandboxed child process: the same results as in-process,
limits that end runaway templates, and no process left behind."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from typing import Any

import airspeed
import pytest

from templates_store.velocity import convert
from templates_store.velocity.legacy_render import LegacyLimits, LegacyRenderer, limit_message
from templates_store.velocity.verifier import LegacyRenderError, render_legacy, verify

from .helpers import RUNAWAY_VELOCITY, load_jsonl

# the CPU limit is past the wall clock: these tests see "time" (the CPU limit has its own)
LIMITS = LegacyLimits(seconds=1.0, cpu_seconds=5, memory_bytes=256 * 1024 * 1024)
# generous: only catches a hang (a runaway case ends within about LIMITS.seconds)
GUARD_SECONDS = 60

# Legacy templates that run for minutes or take gigabytes in airspeed
RUNAWAY_LEGACY = {
    "string doubling": ('#set($s = "a")#foreach($i in [1..30])#set($s = "$s$s")#end$s', {}),
    "catastrophic regex": ("#if($s.matches('(a+)+b'))y#end", {"s": "a" * 40}),
    "macro recursing twice per level": (
        "#macro(r $s)#if($s.length() > 0)#r($s.replace('a', '', 1))"
        "#r($s.replace('a', '', 1))#end#end#r($s)",
        {"s": "a" * 40},
    ),
}
RUNAWAY_DATA = {"l": [1], "s": "x"}  # the data the runaway list is written for


def in_process(source: str, params: dict[str, Any]) -> tuple[str | None, str | None]:
    """airspeed as the legacy gateway ran it, in this process: (text, error)."""
    try:
        return airspeed.Template(source).merge(copy.deepcopy(params)) if source else "", None
    except Exception as exc:  # noqa: BLE001 - any failure is the gateway's system error
        return None, f"{type(exc).__name__}: {exc}"


def process_exists(pid: int) -> bool:
    # a zombie (exited, not reaped) still has its /proc entry
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture
def renderer() -> Iterator[LegacyRenderer]:
    with LegacyRenderer(LIMITS) as legacy:
        yield legacy


def test_legacy_samples__sandboxed__same_text_or_error_as_in_process(
    legacy_renderer: LegacyRenderer,
) -> None:
    # Given every legacy template and sample
    templates = {t["tpl_id"]: t for t in load_jsonl("templates.jsonl")}
    cases = [
        (templates[s["tpl_id"]].get(field) or "", s["params"])
        for s in load_jsonl("samples.jsonl")
        for field in ("subject", "content")
    ]
    # When rendered in the sandbox
    outcomes = legacy_renderer.render_many(cases)
    # Then each is exactly what airspeed gives in-process
    assert len(cases) > 300
    assert [(o.output, o.error) for o in outcomes] == [in_process(*case) for case in cases]


@pytest.mark.parametrize(
    "source, params",
    [
        ("#set($x = 'a' + 1)", {}),
        ("#foreach($i in $n)x#end", {"n": 3}),
        ("#if($a", {}),
        ("#macro(r)#r()#end#r()", {}),
    ],
)
def test_airspeed_error__sandboxed__class_and_message_as_in_process(
    renderer: LegacyRenderer, source: str, params: dict
) -> None:
    # Given a template airspeed fails on
    # When rendered in the sandbox
    outcome = renderer.render(source, params)
    # Then the error is airspeed's own (class and message), not a limit
    expected = in_process(source, params)[1]
    assert outcome.limit is None
    assert (outcome.output, outcome.error) == (None, expected)


def test_template_writing_its_data__two_cases__each_gets_its_own_copy(
    renderer: LegacyRenderer,
) -> None:
    # Given a template that appends to a list of its data
    params = {"l": [1]}
    # When the same parameters render twice
    outcomes = renderer.render_many([("$l.add(2)$l", params), ("$l.add(2)$l", params)])
    # Then both render from the original data (a null result renders its own source), which
    # is untouched
    assert [o.output for o in outcomes] == ["$l.add(2)[1, 2]", "$l.add(2)[1, 2]"]
    assert params == {"l": [1]}


@pytest.mark.parametrize("kind", sorted(RUNAWAY_LEGACY))
def test_runaway_template__rendered__limit_message_within_guard(
    renderer: LegacyRenderer, kind: str
) -> None:
    # Given a legacy template that runs for minutes or takes gigabytes
    source, params = RUNAWAY_LEGACY[kind]
    started = time.monotonic()
    # When rendered in the sandbox
    outcome = renderer.render(source, params)
    # Then a limit ends it, reported as such
    assert time.monotonic() - started < GUARD_SECONDS
    assert outcome.limit in ("time", "cpu", "memory")
    assert (outcome.output, outcome.error) == (None, limit_message(outcome.limit))


@pytest.mark.parametrize("source", RUNAWAY_VELOCITY)
def test_runaway_velocity__rendered__ends_with_limit_or_airspeeds_error(
    renderer: LegacyRenderer, source: str
) -> None:
    # Given a template that never ends or explodes (the list our engine's limits are tested on)
    started = time.monotonic()
    # When airspeed renders it in the sandbox
    outcome = renderer.render(source, RUNAWAY_DATA)
    # Then it ends: a limit, or airspeed's own failure (infinite macro recursion)
    assert time.monotonic() - started < GUARD_SECONDS
    assert outcome.output is None
    assert outcome.limit is not None or outcome.error.startswith("TemplateExecutionError")


def test_cpu_bound_template__generous_wall_clock__stopped_by_cpu_limit() -> None:
    # Given a CPU limit well under the wall-clock limit
    limits = LegacyLimits(seconds=GUARD_SECONDS / 2, cpu_seconds=1)
    started = time.monotonic()
    # When a loop of 25 million iterations renders
    with LegacyRenderer(limits) as legacy:
        outcome = legacy.render("#foreach($i in [1..5000])#foreach($j in [1..5000])#end#end", {})
    # Then RLIMIT_CPU ends it
    assert time.monotonic() - started < GUARD_SECONDS / 2
    assert outcome.limit == "cpu"


def test_huge_string__memory_limit__reported_as_memory(renderer: LegacyRenderer) -> None:
    # Given a template building a string of a billion characters
    # When rendered with a 256 MB address space
    outcome = renderer.render("$s.center(1000000000)", {"s": "x"})
    # Then the memory limit ends it
    assert outcome.limit == "memory"


def test_long_output__output_limit__reported_as_output() -> None:
    # Given an output limit of 100 characters
    with LegacyRenderer(LegacyLimits(max_output_chars=100)) as legacy:
        # When a template renders 150 characters, then 99
        outcomes = legacy.render_many(
            [("#foreach($i in [1..50])xyz#end", {}), ("#foreach($i in [1..33])xyz#end", {})]
        )
    # Then the first exceeds the limit, the second is whole
    assert [o.limit for o in outcomes] == ["output", None]
    assert outcomes[1].output == "xyz" * 33


def test_time_limit__child__killed_and_reaped_and_next_case_in_a_fresh_child(
    renderer: LegacyRenderer,
) -> None:
    # Given a running child
    assert renderer.render("Hi $name", {"name": "A"}).output == "Hi A"
    first_child = renderer.child_pid
    # When a case exceeds the time limit
    outcome = renderer.render(*RUNAWAY_LEGACY["catastrophic regex"])
    # Then that child and its process group are gone (killed and reaped)
    assert outcome.limit == "time"
    assert not process_exists(first_child)
    with pytest.raises(ProcessLookupError):
        os.killpg(first_child, 0)
    # And the next case renders normally in another child
    assert renderer.render("Hi $name", {"name": "B"}).output == "Hi B"
    assert renderer.child_pid not in (None, first_child)


def test_batch__case_after_a_limit__rendered_with_its_own_result(
    renderer: LegacyRenderer,
) -> None:
    # Given a batch with a runaway case between two normal ones
    runaway = RUNAWAY_LEGACY["macro recursing twice per level"]
    cases = [("a$x", {"x": 1}), runaway, ("b$x", {"x": 2})]
    # When rendered
    outcomes = renderer.render_many(cases)
    # Then only the runaway case is a limit hit
    assert [(o.output, o.limit) for o in outcomes] == [("a1", None), (None, "time"), ("b2", None)]


def test_batch__same_runaway_template_many_cases__rest_skipped_after_the_cap() -> None:
    # Given a cap of 2 limit hits per template and 5 cases of a runaway template
    limits = LegacyLimits(seconds=0.5, cpu_seconds=1, limit_hits_per_source=2)
    source, params = RUNAWAY_LEGACY["catastrophic regex"]
    started = time.monotonic()
    # When rendered
    with LegacyRenderer(limits) as legacy:
        outcomes = legacy.render_many([(source, params)] * 5 + [("ok", {})])
    # Then 2 cases ran into the time limit, 3 were not run, and other templates still render
    assert time.monotonic() - started < GUARD_SECONDS
    assert [o.limit for o in outcomes[:2]] == ["time", "time"]
    assert all(o.limit.startswith("skipped") for o in outcomes[2:5])
    assert all(o.error == limit_message(o.limit) for o in outcomes[:5])
    assert outcomes[5].output == "ok"


def test_renderer__closed__child_process_gone() -> None:
    # Given a renderer whose child has rendered
    with LegacyRenderer(LIMITS) as legacy:
        legacy.render("x", {})
        pid = legacy.child_pid
        assert process_exists(pid)
    # When closed (end of the with block)
    # Then its child is gone
    assert legacy.child_pid is None
    assert not process_exists(pid)


def test_empty_source__rendered__empty_text_without_a_child() -> None:
    # Given an empty legacy source (the gateway rendered "")
    with LegacyRenderer(LIMITS) as legacy:
        # When rendered
        outcome = legacy.render("", {"a": 1})
        # Then the text is empty and no process was needed
        assert (outcome.output, legacy.child_pid) == ("", None)


def test_render_legacy__limit__raises_with_the_limit_message(renderer: LegacyRenderer) -> None:
    # Given a runaway template
    source, params = RUNAWAY_LEGACY["catastrophic regex"]
    # When rendered like the gateway
    with pytest.raises(LegacyRenderError) as info:
        render_legacy(source, params, renderer)
    # Then the error says which limit was exceeded
    assert str(info.value) == limit_message("time")
    assert info.value.outcome.limit == "time"


@pytest.mark.parametrize("kind", sorted(RUNAWAY_LEGACY))
def test_verify__runaway_legacy_template__difference_with_the_limit_message(
    renderer: LegacyRenderer, kind: str
) -> None:
    # Given a runaway legacy template and a converted source that renders (a stand-in: this
    # is about the legacy side; our engine bounds regexes in its own sandbox)
    source, params = RUNAWAY_LEGACY[kind]
    started = time.monotonic()
    # When verified on two cases
    differences = verify(source, "converted", [params, params], legacy=renderer)
    # Then both cases are differences naming the limit
    assert time.monotonic() - started < GUARD_SECONDS
    assert [d.case_index for d in differences] == [0, 1]
    assert all(d.legacy.error == limit_message(d.legacy.limit) for d in differences)
    assert "-<error: legacy render exceeded limits: " in differences[0].diff


def test_verify__runaway_on_both_engines__still_a_difference(renderer: LegacyRenderer) -> None:
    # Given a runaway template whose conversion our engine stops with its own limit error
    source, params = RUNAWAY_LEGACY["string doubling"]
    conversion = convert(source)
    # When verified
    differences = verify(source, conversion, [params], legacy=renderer)
    # Then it is a difference (what airspeed would have given is unknown), not "both failed"
    assert len(differences) == 1
    assert differences[0].legacy.limit is not None
    assert differences[0].converted.failed
