"""`make bench`: render throughput of converted templates on the new engine against airspeed
(the old engine), same templates, same data, same run. Printed as a ratio, overall and per
template kind (channel). Speed is measured here, never asserted by the unit tests."""

import sys

from templates_store.velocity.bench_render import benchmark, legacy_data_dir, load_legacy_data
from templates_store.velocity.engine import fast_path_default


def main(argv: list[str]) -> int:
    rounds = int(argv[1]) if len(argv) > 1 else 20
    templates, samples = load_legacy_data(legacy_data_dir())
    result = benchmark(templates, samples, rounds=rounds)
    print(
        f"template render benchmark: {len(templates)} templates, {len(samples)} samples, "
        f"{rounds} rounds, {int(result['renders'])} renders per engine, "
        f"fast path: {'on' if fast_path_default() else 'off (NOTIFY_TEMPLATE_FAST_PATH)'}"
    )
    print(
        f"  airspeed (legacy) : {result['airspeed_per_second']:>12,.0f} renders/s  (baseline 1.00x)"
    )
    print(
        f"  jinja2 (converted): {result['engine_per_second']:>12,.0f} renders/s  "
        f"({result['ratio']:.2f}x)"
    )
    for kind, figures in sorted(result.get("kinds", {}).items()):
        print(
            f"    {kind:<5} {int(figures['renders']):>6} renders: airspeed "
            f"{figures['airspeed_per_second']:>10,.0f}/s, jinja2 "
            f"{figures['engine_per_second']:>10,.0f}/s  ({figures['ratio']:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
