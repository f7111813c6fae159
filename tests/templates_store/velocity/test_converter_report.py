"""Conversion report (status, issues), Jinja-literal text, CLI, verifier and benchmark."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from templates_store import bench
from templates_store.velocity import Engine, TemplateRenderError, convert
from templates_store.velocity.bench_render import benchmark, load_legacy_data
from templates_store.velocity.verifier import verify


def test_plain_text__convert__exact_without_issues() -> None:
    # Given a template without references
    # When converted
    conversion = convert("Hello, world")
    # Then it is exact with no issues
    assert (conversion.status, conversion.issues) == ("exact", [])


def test_reference_in_mail__convert__warns_unescaped_output() -> None:
    # Given a mail template rendering a parameter
    # When converted
    conversion = convert("<p>$name</p>", channel="mail")
    # Then the report says the output carries unescaped input
    assert conversion.status == "exact_with_warnings"
    assert [i.construct for i in conversion.issues] == ["unescaped_output"]
    assert conversion.issues[0].severity == "warning"


@pytest.mark.parametrize(
    "source, construct",
    [("$p.items", "dict_method_key"), ("$s.toUpperCase()", "java_method")],
)
def test_legacy_quirk__convert__warns(source: str, construct: str) -> None:
    # Given a template relying on a legacy quirk
    # When converted for SMS (no escaping warning)
    conversion = convert(source, channel="sms")
    # Then the quirk is reported as a warning with its position
    assert conversion.status == "exact_with_warnings"
    assert (conversion.issues[0].construct, conversion.issues[0].line) == (construct, 1)


def test_syntax_error__convert__needs_review_and_raises() -> None:
    # Given a template airspeed cannot parse
    conversion = convert("line1\n#if($a")
    # When converted and rendered
    # Then it needs review, with the position, and rendering fails like the legacy gateway
    assert conversion.status == "needs_review"
    assert conversion.issues[0].construct == "syntax"
    with pytest.raises(Exception):  # noqa: B017 - any TemplateRenderError subclass
        Engine().render(conversion.source, {"a": 1})


def test_jinja_syntax_in_velocity__convert__renders_as_text() -> None:
    # Given Velocity text that looks like Jinja tags
    source = "{{ 7*7 }} {% raw %} {# x #} {$n}{"
    # When converted and rendered
    output = Engine().render(convert(source).source, {"n": 1})
    # Then the braces come out literally
    assert output == "{{ 7*7 }} {% raw %} {# x #} {1}{"


def test_side_effect_order__convert__needs_review() -> None:
    # Given an expression whose operands depend on evaluation order
    # When converted
    conversion = convert("#if($l.add(1) == $l.size())x#end")
    # Then it is flagged
    assert conversion.status == "needs_review"
    assert conversion.issues[0].construct == "evaluation_order"


def test_to_dict__conversion__is_json() -> None:
    # Given a conversion with issues
    # When serialised
    data = json.loads(json.dumps(convert("$s.trim()", channel="sms").to_dict()))
    # Then the report keeps source, status and issues
    assert set(data) == {"source", "status", "issues"}
    assert data["issues"][0]["construct"] == "java_method"


def test_cli__file__prints_source_and_report(tmp_path) -> None:  # noqa: ANN001
    # Given a Velocity file
    path = tmp_path / "t.vm"
    path.write_text("Hi $name", encoding="utf-8")
    # When the CLI converts it
    result = subprocess.run(
        [sys.executable, "-m", "templates_store.velocity.converter", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Then stdout holds the Jinja source and the JSON report
    assert "vnt('name', '$name')" in result.stdout
    assert '"status": "exact_with_warnings"' in result.stdout


def test_verify__wrong_conversion__reports_difference_with_diff() -> None:
    # Given a Velocity template and a deliberately wrong Jinja source
    # When verified
    differences = verify("Hi $name", "Hello {{ _vdata.name }}", [{"name": "A"}, {}])
    # Then every differing case is reported with both outputs and a unified diff
    assert [d.case_index for d in differences] == [0, 1]
    assert differences[0].legacy.output == "Hi A"
    assert "-Hi A" in differences[0].diff


def test_verify__errors_on_both_sides__equal() -> None:
    # Given a template that fails on both engines
    # When verified
    differences = verify("#set($x = 'a' + 1)", None, [{}])
    # Then it is not a difference (both are the gateway's system error)
    assert differences == []


def test_benchmark__legacy_samples__figures_overall_and_per_kind() -> None:
    # Given the legacy templates and samples
    templates, samples = load_legacy_data()
    # When benchmarked briefly
    result = benchmark(templates, samples, rounds=1)
    # Then both engines' rates are measured, overall and per channel, and the per-channel
    # renders add up to the headline (how fast is `make bench`'s to show, not a unit test's)
    assert result["renders"] > 0
    assert set(result["kinds"]) == {t["channel"] for t in templates}
    assert sum(k["renders"] for k in result["kinds"].values()) == result["renders"]
    for figures in [result, *result["kinds"].values()]:
        assert 0 < figures["airspeed_per_second"] < math.inf
        assert 0 < figures["engine_per_second"] < math.inf
        assert figures["ratio"] == pytest.approx(
            figures["engine_per_second"] / figures["airspeed_per_second"]
        )


def test_make_bench__one_round__prints_figures_per_kind(capsys) -> None:  # noqa: ANN001
    # Given the legacy data
    channels = {t["channel"] for t in load_legacy_data()[0]}
    # When `make bench` runs (one round)
    status = bench.main(["bench", "1"])
    # Then it prints the headline rates and a line of figures per channel
    out = capsys.readouterr().out
    assert status == 0
    assert "airspeed (legacy)" in out and "jinja2 (converted)" in out
    assert "fast path: on" in out
    kind_lines = [line.split()[0] for line in out.splitlines() if " renders: airspeed " in line]
    assert sorted(kind_lines) == sorted(channels)


def test_load_legacy_data__env_override__reads_that_directory(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # Given LEGACY_DATA_DIR pointing at another copy of the data
    (tmp_path / "templates.jsonl").write_text('{"tpl_id": "T"}\n', encoding="utf-8")
    (tmp_path / "samples.jsonl").write_text('{"tpl_id": "T", "params": {}}\n', encoding="utf-8")
    monkeypatch.setenv("LEGACY_DATA_DIR", str(tmp_path))
    # When loaded without a directory
    templates, samples = load_legacy_data()
    # Then that copy is read
    assert templates == [{"tpl_id": "T"}]
    assert samples == [{"tpl_id": "T", "params": {}}]


def test_macro__converted__defined_per_render_without_touching_data() -> None:
    # Given a converted template defining and calling a macro
    engine = Engine()
    source = convert("#macro(row $x)[$x]#end#row($a)#row('b')").source
    data = {"a": 1}
    # When rendered twice with the same data
    first = engine.render(source, data)
    second = engine.render(source, data)
    # Then both renders match, the data is untouched and needs no copy
    assert first == second == "[1][b]"
    assert data == {"a": 1}
    assert not engine.compile(source).mutates


def test_macro__data_has_macro_key__redefinition_fails_like_airspeed() -> None:
    # Given data that already holds the macro's key (airspeed kept macros in the data)
    source = convert("#macro(row $x)[$x]#end#row(1)").source
    # When rendered
    # Then it fails as airspeed did
    with pytest.raises(TemplateRenderError):
        Engine().render(source, {"#row": 1})


def test_lean_render__hand_written_jinja__keeps_globals() -> None:
    # Given a template reading a variable of its own (not `_vdata`) and a converted template
    engine = Engine()
    plain = "{% for i in [1, 2] %}{{ v }}{% endfor %}"
    converted = convert("Hi $v").source
    # When compiled
    # Then only the converted one skips Jinja's Context, and both render normally
    assert not engine.compile(plain).lean
    assert engine.compile(converted).lean
    assert engine.render(plain, {"v": "x"}) == "xx"
    assert engine.render(converted, {"v": "x"}) == "Hi x"
