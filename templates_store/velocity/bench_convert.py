"""Conversion time of large hostile Velocity sources (`make bench`, "converter").

Each kind is a pattern that once made a step of the converter super-linear (or could): long
text, thousands of references, deep nesting, many macros, unterminated constructs, patterns
that make regex-based tokenizers backtrack.  `HOSTILE_SOURCES[kind](size)` builds a source of
about `size` characters; the linearity tests build the same kinds at two sizes and compare
the work done.  Run: `python -m templates_store.velocity.bench_convert [SIZE]`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from .converter import _check_compiles, _convert

__all__ = ["HOSTILE_SOURCES", "benchmark_conversion", "benchmark_compile_check"]


def _repeat(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


def _numbered(pattern: str, size: int) -> str:
    """`pattern` with {i} = 0, 1, 2... (and {j} = i + 1) repeated up to `size` characters."""
    parts, length, i = [], 0, 0
    while length < size:
        part = pattern.format(i=i, j=i + 1)
        parts.append(part)
        length += len(part)
        i += 1
    return "".join(parts)


def _nest(opening: str, middle: str, closing: str, depth: int) -> str:
    return opening * depth + middle + closing * depth


HOSTILE_SOURCES: dict[str, Callable[[int], str]] = {
    "plain_text": lambda n: _repeat("Dear customer, your order has shipped. 您的订单已发货。\n", n),
    "references": lambda n: _repeat("$a.b.c ", n),
    "braced_references": lambda n: _repeat("$!{a.b} ${c|'d'} ${e.f[1]} ", n),
    "method_calls": lambda n: _repeat("$a.b($c, 'x').d[1] $s.size ", n),
    "java_methods": lambda n: _repeat("$s.toUpperCase() ", n),
    "nested_if_50": lambda n: _repeat(_nest("#if($a)x", "y", "#end", 50), n),
    "nested_foreach_20": lambda n: _repeat(_nest("#foreach($i in $l)", "$i", "#end", 20), n),
    "nested_if_200": lambda n: _repeat(_nest("#if($a)", "$b.c", "#end", 200), n),
    "deep_if_content": lambda n: _nest("#if($a)", _repeat("$b.c $d ", n - 2200), "#end", 200),
    "macros": lambda n: _numbered("#macro(m{i} $a $b)$a-$b#end", n),
    "macro_calls": lambda n: "#macro(m $a)[$a]#end" + _repeat("#m($a 'x' 1)", n),
    "macro_chain": lambda n: _numbered("#macro(m{i})#m{j}()#end", n),
    "nested_macros": lambda n: _repeat(_nest("#macro(m $a)", "$a#m(1)", "#end", 100), n),
    "defines": lambda n: _numbered("#define($d{i})x$y#end$d{i}", n),
    "nested_defines": lambda n: _repeat(_nest("#define($d)", "$d", "#end", 100), n),
    "sets": lambda n: _numbered("#set($a{i} = $b + 1)\n", n),
    "long_string": lambda n: "#set($s = '" + "a" * n + "')$s",
    "long_interpolated_string": lambda n: '#set($s = "' + "a" * n + '")$s',
    "interpolated_strings": lambda n: _repeat('#set($s = "$a ${b} $c.d() #if($e)f#end")$s', n),
    "nested_interpolation": lambda n: _repeat('#set($s = "$a.b(\\"$c.d(\\\\\\"$e\\\\\\")\\")")', n),
    "evaluate": lambda n: _repeat("#evaluate('$a #set($b = 1)')", n),
    "escapes": lambda n: _repeat("\\$a \\#if \\\\$b \\${c} ", n),
    "unterminated_comments": lambda n: _repeat("#* x ", n),
    "unterminated_directives": lambda n: _repeat("#if x #set x #m x #stopx #{x} $!{} ", n),
    "unterminated_string": lambda n: "#if('" + "x" * n,
    "literal_markers": lambda n: _repeat("#[[ $a ]]# ", n),
    "block_comments": lambda n: _repeat("#* comment $a #if *# ", n),
    "line_comments": lambda n: _repeat("## a comment line $a\n", n),
    "hashes": lambda n: "#" * n,
    "dollars": lambda n: "$" * n,
    "backslashes": lambda n: "\\" * n,
    "whitespace_runs": lambda n: _repeat("#if" + " " * 200 + "x $a" + " " * 200, n),
    "binary_chains": lambda n: _repeat("#set($x = $a" + " + $a" * 150 + ")\n", n),
    "or_chains": lambda n: _repeat("#if($c == 'x'" + " || $c == 'x'" * 90 + ")y#end\n", n),
    "nested_lists": lambda n: _repeat("#set($x = " + _nest("[", "1", "]", 100) + ")\n", n),
    "nested_parens": lambda n: _repeat("#set($x = " + _nest("(", "1", ")", 100) + ")\n", n),
    "nested_calls_in_lists": lambda n: _repeat(
        "#set($x = " + _nest("[$a(", "1", ")]", 40) + ")\n", n
    ),
    "nested_method_calls": lambda n: _repeat(_nest("$a.b(", "1", ")", 40) + " ", n),
    "mixed": lambda n: _repeat(
        "## header\n#set($total = $price * $qty)\n#if($vip && $total > 100)Dear ${name}, "
        "#foreach($item in $items)$item.name: $!item.price\n#end#else\\$ $total#end"
        "#* note *# #macro(row $x)<td>$x</td>#end#row($a) #[[raw]]# 100% #333\n",
        n,
    ),
}


def benchmark_conversion(size: int = 200_000) -> list[dict[str, Any]]:
    """Parse, analysis and emission (the converter, without the compile check) of a source of
    about `size` characters of each kind: [{"kind", "chars", "seconds", "status"}]."""
    results = []
    for kind, make in HOSTILE_SOURCES.items():
        source = make(size)
        start = time.perf_counter()
        try:
            status = _convert(source, None, frozenset())[0].status
        except RecursionError:
            status = "nested too deeply (RecursionError)"
        seconds = time.perf_counter() - start
        results.append({"kind": kind, "chars": len(source), "seconds": seconds, "status": status})
    return results


def benchmark_compile_check(kinds: list[str], size: int) -> list[dict[str, Any]]:
    """convert()'s compile check (Jinja and Python compile of the result) of a source of about
    `size` characters of each of `kinds`: [{"kind", "chars", "jinja_chars", "seconds"}]."""
    results = []
    for kind in kinds:
        source = HOSTILE_SOURCES[kind](size)
        conversion = _convert(source, None, frozenset())[0]
        start = time.perf_counter()
        _check_compiles(conversion)
        seconds = time.perf_counter() - start
        results.append(
            {
                "kind": kind,
                "chars": len(source),
                "jinja_chars": len(conversion.source or ""),
                "seconds": seconds,
            }
        )
    return results


if __name__ == "__main__":
    for row in benchmark_conversion(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000):
        print(f"{row['kind']:<26} {row['chars']:>8} {row['seconds']:8.3f} s  {row['status']}")
