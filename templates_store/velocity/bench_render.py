"""Renders/second of converted templates on our Engine versus airspeed on the same data.

Both sides work like a production gateway: templates compiled once and cached, one deep
copy of the parameters per render (airspeed always; our Engine when the template can write
into its data).  Run: `python -m templates_store.velocity.bench_render [ROUNDS]`.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import airspeed

from .converter import convert
from .engine import Engine

__all__ = ["benchmark", "load_legacy_data"]

LEGACY_DATA = Path("/work/shared/legacy/data")


def load_legacy_data(
    directory: Path = LEGACY_DATA,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with open(directory / "templates.jsonl", encoding="utf-8") as fh:
        templates = [json.loads(line) for line in fh if line.strip()]
    with open(directory / "samples.jsonl", encoding="utf-8") as fh:
        samples = [json.loads(line) for line in fh if line.strip()]
    return templates, samples


def benchmark(
    templates: list[dict[str, Any]], samples: list[dict[str, Any]], rounds: int = 20
) -> dict[str, float]:
    """Render every sample's subject and content `rounds` times on both engines.

    Returns {"renders", "airspeed_per_second", "engine_per_second", "ratio"}; ratio is
    ours / airspeed.  Sample/template pairs whose legacy render fails are skipped.
    """
    by_id = {t["tpl_id"]: t for t in templates}
    engine = Engine(autoescape=False)
    legacy_cache: dict[str, airspeed.Template] = {}
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    for sample in samples:
        template = by_id.get(sample["tpl_id"])
        if template is None:
            continue
        for field in ("subject", "content"):
            source = template.get(field) or ""
            if not source:
                continue
            conversion = convert(source)
            if conversion.source is None:
                continue
            legacy = legacy_cache.get(source)
            if legacy is None:
                legacy = airspeed.Template(source)
                legacy.ensure_compiled()
                legacy_cache[source] = legacy
            try:
                legacy.merge(copy.deepcopy(sample["params"]))
            except Exception:  # noqa: BLE001 - failing legacy cases are not timed
                continue
            engine.compile(conversion.source)
            jobs.append((source, conversion.source, sample["params"]))

    start = time.perf_counter()
    for _ in range(rounds):
        for source, _jinja, params in jobs:
            legacy_cache[source].merge(copy.deepcopy(params))
    legacy_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(rounds):
        for _source, jinja, params in jobs:
            engine.render(jinja, params)
    engine_seconds = time.perf_counter() - start

    renders = len(jobs) * rounds
    legacy_rate = renders / legacy_seconds if legacy_seconds else float("inf")
    engine_rate = renders / engine_seconds if engine_seconds else float("inf")
    return {
        "renders": float(renders),
        "airspeed_per_second": legacy_rate,
        "engine_per_second": engine_rate,
        "ratio": engine_rate / legacy_rate,
    }


if __name__ == "__main__":
    result = benchmark(*load_legacy_data(), rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(json.dumps(result, indent=2))
