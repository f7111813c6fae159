"""Pinned outcomes of the adversarial corpus (data/adversarial_corpus.jsonl).

Per corpus row, data/adversarial_expected.json records the conversion status and one code
per case saying how airspeed (legacy) and our engine compared on it:

    =  both rendered the same text            x  both failed (the gateway's 50000)
    ~  same text but for a memory address      L  legacy rendered, ours failed
    d  both rendered, different texts          O  ours rendered, legacy failed

test_adversarial_corpus.py fails when a row gets worse than its pin, on either engine (fast
path on and off); improvements are reported so the pins get updated. After a reviewed change:

    python -m tests.templates_store.adversarial_pins           # distribution, changes vs pins
    python -m tests.templates_store.adversarial_pins --write   # rewrite the pins

Both engines must agree on every case, or nothing is written.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from templates_store.velocity.converter import EXACT, EXACT_WITH_WARNINGS, NEEDS_REVIEW, convert
from templates_store.velocity.engine import Engine
from templates_store.velocity.verifier import Outcome, render_converted, render_legacy

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "adversarial_corpus.jsonl"
PINS = DATA / "adversarial_expected.json"
COMMAND = "python -m tests.templates_store.adversarial_pins --write"

EQUAL, SAME_BUT_ADDRESS, BOTH_FAILED = "=", "~", "x"
OURS_FAILED, DIFFERENT, LEGACY_FAILED = "L", "d", "O"
CODES = (EQUAL, SAME_BUT_ADDRESS, BOTH_FAILED, OURS_FAILED, DIFFERENT, LEGACY_FAILED)
STATUS_RANK = {EXACT: 0, EXACT_WITH_WARNINGS: 1, NEEDS_REVIEW: 2}
# a bound method's repr carries the address of an object each engine made itself
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")

LINES = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
ROWS: list[dict[str, Any]] = [json.loads(line) for line in LINES]


def row_sha(index: int) -> str:
    """Identifies the row's text, so a pin never silently applies to an edited row."""
    return hashlib.sha256(LINES[index].encode("utf-8")).hexdigest()[:16]


def case_code(legacy: Outcome, ours: Outcome) -> str:
    if legacy.failed:
        return BOTH_FAILED if ours.failed else LEGACY_FAILED
    if ours.failed:
        return OURS_FAILED
    if legacy.output == ours.output:
        return EQUAL
    assert legacy.output is not None and ours.output is not None
    if _ADDRESS.sub(" at 0x?", legacy.output) == _ADDRESS.sub(" at 0x?", ours.output):
        return SAME_BUT_ADDRESS
    return DIFFERENT


def _outcome(func: Any, *args: Any) -> Outcome:
    try:
        return Outcome(func(*args))
    except Exception as exc:  # noqa: BLE001 - any failure is the gateway's system error
        return Outcome(None, f"{type(exc).__name__}: {exc}")


@cache
def converted(index: int) -> tuple[str, str | None, tuple[Outcome, ...]]:
    """(status, Jinja source, legacy outcome per case) of a row, computed once."""
    row = ROWS[index]
    conversion = convert(row["source"], channel=row.get("channel"))
    legacy = tuple(_outcome(render_legacy, row["source"], params) for params in row["cases"])
    return conversion.status, conversion.source, legacy


@dataclass(frozen=True)
class RowResult:
    status: str
    codes: str
    legacy: tuple[Outcome, ...]
    ours: tuple[Outcome, ...]


def evaluate(index: int, engine: Engine) -> RowResult:
    """Convert row `index`, render every case on airspeed and on `engine`, compare."""
    status, source, legacy = converted(index)
    ours = tuple(
        Outcome(None, "not converted")
        if source is None
        else _outcome(render_converted, source, params, engine)
        for params in ROWS[index]["cases"]
    )
    codes = "".join(case_code(left, right) for left, right in zip(legacy, ours, strict=True))
    return RowResult(status, codes, legacy, ours)


def pin_of(index: int, result: RowResult) -> dict[str, Any]:
    return {
        "row": index,
        "sha": row_sha(index),
        "status": result.status,
        "equal_output": result.codes.count(EQUAL),
        "both_failed": result.codes.count(BOTH_FAILED),
        "cases": result.codes,
    }


def load_pins() -> list[dict[str, Any]]:
    return json.loads(PINS.read_text(encoding="utf-8"))["rows"]


def _case_no_worse(pinned: str, now: str) -> bool:
    """Only becoming equal counts as better; any other change is a regression."""
    if now in (pinned, EQUAL):
        return True
    return now == SAME_BUT_ADDRESS and pinned not in (EQUAL, BOTH_FAILED)


def compare(pin: dict[str, Any], status: str, codes: str) -> tuple[list[str], list[str]]:
    """(regressions, improvements) of a row's current status and case codes against its pin."""
    worse: list[str] = []
    better: list[str] = []
    if STATUS_RANK[status] > STATUS_RANK[pin["status"]]:
        worse.append(f"status {pin['status']} -> {status}")
    elif STATUS_RANK[status] < STATUS_RANK[pin["status"]]:
        better.append(f"status {pin['status']} -> {status}")
    pinned = pin["cases"]
    if len(codes) != len(pinned):
        worse.append(f"{len(codes)} cases, {len(pinned)} pinned: regenerate the pins")
        return worse, better
    for case, (was, now) in enumerate(zip(pinned, codes, strict=True)):
        if now == was:
            continue
        change = f"case {case}: {was} -> {now}"
        (better if _case_no_worse(was, now) else worse).append(change)
    if codes.count(EQUAL) < pin["equal_output"]:
        worse.append(f"{codes.count(EQUAL)} cases equal with output, {pin['equal_output']} pinned")
    return worse, better


def distribution(pins: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows per status, rows comparing real output, cases per code."""
    comparing = [p for p in pins if p["equal_output"] or SAME_BUT_ADDRESS in p["cases"]]
    return {
        "rows": len(pins),
        "rows_per_status": dict(collections.Counter(p["status"] for p in pins).most_common()),
        "rows_comparing_output": len(comparing),
        "rows_comparing_no_output": len(pins) - len(comparing),
        "cases": sum(len(p["cases"]) for p in pins),
        "cases_per_code": {
            code: n for code in CODES if (n := sum(p["cases"].count(code) for p in pins))
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {PINS.name}")
    args = parser.parse_args(argv)
    fast, jinja = Engine(fast_path=True), Engine(fast_path=False)
    pins, disagreements = [], []
    for index in range(len(ROWS)):
        result = evaluate(index, fast)
        other = evaluate(index, jinja)
        if other.codes != result.codes:
            disagreements.append(f"corpus{index}: fast path {result.codes}, Jinja {other.codes}")
        pins.append(pin_of(index, result))
    if disagreements:
        print("the fast path and Jinja disagree; nothing written:", *disagreements, sep="\n")
        return 1
    old = {p["row"]: p for p in load_pins()} if PINS.exists() else {}
    for pin in pins:
        before = old.get(pin["row"])
        if before is None or before["sha"] != pin["sha"]:
            print(f"corpus{pin['row']}: new pin {pin['status']} {pin['cases']}")
            continue
        worse, better = compare(before, pin["status"], pin["cases"])
        for kind, changes in (("WORSE", worse), ("better", better)):
            if changes:
                print(f"corpus{pin['row']} {kind}: {'; '.join(changes)}")
    print(json.dumps(distribution(pins), indent=2))
    if args.write:
        body = ",\n".join(json.dumps(p, ensure_ascii=False) for p in pins)
        PINS.write_text(
            '{"generated_by": "' + COMMAND + '",\n"rows": [\n' + body + "\n]}\n",
            encoding="utf-8",
        )
        print(f"wrote {PINS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
