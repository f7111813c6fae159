"""`make bench`: render throughput of converted templates on the new engine against airspeed
(the old engine), same templates, same data, same run. Printed as a ratio. Then "converter":
the conversion time of a 200,000-character hostile source of each kind (the size limit), and
what convert()'s compile check of the result costs on smaller ones. Last, the hostile requests
of the security suite through a real server: the slowest one and the server's peak memory."""

import sys

from templates_store.bench_hostile import benchmark_hostile
from templates_store.velocity.bench_convert import benchmark_compile_check, benchmark_conversion
from templates_store.velocity.bench_render import benchmark, legacy_data_dir, load_legacy_data
from templates_store.velocity.converter import MAX_SOURCE_CHARS
from templates_store.velocity.engine import fast_path_default

# kinds whose compile check is timed (it costs far more per character than converting)
COMPILE_CHECK_KINDS = ["plain_text", "mixed", "references", "nested_foreach_20"]
COMPILE_CHECK_CHARS = 10_000


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
    print_converter()
    print_hostile()
    return 0


def print_hostile() -> None:
    result = benchmark_hostile()
    name, status, seconds = result["slowest"]
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(result["statuses"].items()))
    print(
        "hostile requests through a real server (tests/security/hostile.py; production "
        "settings, SQLite):"
    )
    print(f"  {result['requests']} requests, answers by status: {statuses}")
    print(f"  slowest request: {name} {seconds:.3f} s (HTTP {status}; goal: under 1 s)")
    print(f"  server peak resident memory (VmHWM): {result['peak_bytes'] / 2**20:.0f} MB")
    if result["marker_created"]:
        print("  A PAYLOAD CREATED ITS MARKER FILE: a template ran code")


def print_converter() -> None:
    rows = benchmark_conversion(MAX_SOURCE_CHARS)
    print(
        f"converter: hostile Velocity sources of {MAX_SOURCE_CHARS:,} characters (parse, "
        "analysis and Jinja output; without the compile check)"
    )
    for row in rows:
        print(
            f"  {row['kind']:<26} {row['chars']:>8,} chars {row['seconds']:>8.3f} s  "
            f"{row['status']}"
        )
    slowest = max(rows, key=lambda row: row["seconds"])
    print(f"  slowest: {slowest['kind']} {slowest['seconds']:.3f} s")
    print("  compile check of the converted source (convert() runs it once), on smaller sources:")
    for row in benchmark_compile_check(COMPILE_CHECK_KINDS, COMPILE_CHECK_CHARS):
        print(
            f"  {row['kind']:<26} {row['chars']:>8,} chars ({row['jinja_chars']:>7,} Jinja) "
            f"{row['seconds']:>8.3f} s"
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
