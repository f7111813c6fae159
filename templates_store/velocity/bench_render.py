"""Renders/second of converted templates on our Engine versus airspeed on the same data.

Both sides work like a production gateway: templates compiled once and cached, one deep
copy of the parameters per render (airspeed always; our Engine when the template can write
into its data).  Run: `python -m templates_store.velocity.bench_render [ROUNDS]`.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import airspeed

from .converter import convert
from .engine import Engine

__all__ = ["benchmark", "load_legacy_data"]

# the repository's sibling `shared/` (as in CI's clone); LEGACY_DATA_DIR overrides it
DEFAULT_LEGACY_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "legacy" / "data"


def legacy_data_dir() -> Path:
    return Path(os.environ.get("LEGACY_DATA_DIR") or DEFAULT_LEGACY_DATA)


def load_legacy_data(
    directory: Path | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    directory = legacy_data_dir() if directory is None else Path(directory)
    with open(directory / "templates.jsonl", encoding="utf-8") as fh:
        templates = [json.loads(line) for line in fh if line.strip()]
    with open(directory / "samples.jsonl", encoding="utf-8") as fh:
        samples = [json.loads(line) for line in fh if line.strip()]
    return templates, samples


def benchmark(
    templates: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    rounds: int = 20,
    repeats: int = 5,
) -> dict[str, Any]:
    """Render every sample's subject and content `rounds` times on both engines.

    Returns {"renders", "airspeed_per_second", "engine_per_second", "ratio", "kinds"}; ratio
    is ours / airspeed over all renders (the headline).  "kinds" holds the same figures per
    template kind (the template's channel: sms, mail, push).  Sample/template pairs whose
    legacy render fails are skipped.
    """
    by_id = {t["tpl_id"]: t for t in templates}
    engine = Engine(autoescape=False)
    legacy_cache: dict[str, airspeed.Template] = {}
    jobs: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
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
            kind = str(template.get("channel") or "other")
            jobs[kind].append((source, conversion.source, sample["params"]))

    kinds: dict[str, dict[str, float]] = {}
    total_renders = 0
    total_legacy = total_engine = 0.0
    for kind in sorted(jobs):
        kind_jobs = jobs[kind]
        # each engine renders `rounds` passes in a row (warm, as a busy gateway is); the
        # whole is repeated and each engine keeps its fastest repeat (a pause of the machine
        # slows one repeat, not the figure)
        legacy_seconds = engine_seconds = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(rounds):
                for source, _jinja, params in kind_jobs:
                    legacy_cache[source].merge(copy.deepcopy(params))
            legacy_seconds = min(legacy_seconds, time.perf_counter() - start)

            start = time.perf_counter()
            for _ in range(rounds):
                for _source, jinja, params in kind_jobs:
                    engine.render(jinja, params)
            engine_seconds = min(engine_seconds, time.perf_counter() - start)

        renders = len(kind_jobs) * rounds
        kinds[kind] = _rates(renders, legacy_seconds, engine_seconds)
        total_renders += renders
        total_legacy += legacy_seconds
        total_engine += engine_seconds
    result: dict[str, Any] = _rates(total_renders, total_legacy, total_engine)
    result["kinds"] = kinds
    return result


def _rates(renders: int, legacy_seconds: float, engine_seconds: float) -> dict[str, float]:
    legacy_rate = renders / legacy_seconds if legacy_seconds else float("inf")
    engine_rate = renders / engine_seconds if engine_seconds else float("inf")
    return {
        "renders": float(renders),
        "airspeed_per_second": legacy_rate,
        "engine_per_second": engine_rate,
        "ratio": engine_rate / legacy_rate if legacy_rate else float("inf"),
    }


if __name__ == "__main__":
    result = benchmark(*load_legacy_data(), rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(json.dumps(result, indent=2))
