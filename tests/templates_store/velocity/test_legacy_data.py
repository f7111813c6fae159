"""Every legacy sample and historical message re-renders byte for byte, with the fast path
on and off (the `converted_engine` fixture)."""

from __future__ import annotations

import re
from functools import cache

import pytest

from templates_store.velocity import Engine, convert

from .helpers import load_jsonl

TEMPLATES = {t["tpl_id"]: t for t in load_jsonl("templates.jsonl")}
SAMPLES = load_jsonl("samples.jsonl")
MESSAGES = [m for m in load_jsonl("messages.jsonl") if m["tpl_id"] in TEMPLATES]
SIGN_PREFIX = re.compile(r"^【[^】]*】")


@cache
def _converted(source: str) -> str:
    return convert(source).source


def _render(engine: Engine, source: str, params: dict) -> str:
    return engine.render(_converted(source), params)


@pytest.mark.parametrize(
    "sample", SAMPLES, ids=[f"{s['tpl_id']}-{i}" for i, s in enumerate(SAMPLES)]
)
def test_sample__converted_template__renders_airspeed_output(
    sample: dict,
    converted_engine: Engine,
) -> None:
    # Given a legacy template and a sample with airspeed's recorded output
    template = TEMPLATES[sample["tpl_id"]]
    # When subject and content are converted and rendered on the new engine
    subject = _render(converted_engine, template["subject"], sample["params"])
    content = _render(converted_engine, template["content"], sample["params"])
    # Then both are exactly what airspeed produced
    assert subject == sample["expected_subject"]
    assert content == sample["expected_content"]


def test_sample__params__not_mutated_by_render(converted_engine: Engine) -> None:
    # Given a template whose #set writes into nested parameters
    params = {"a": {"b": 1}, "items": [1]}
    source = convert("#set($a.b = 2)$items.add(3)$a.b").source
    # When it renders
    output = converted_engine.render(source, params)
    # Then the output sees the writes but the caller's data is unchanged
    assert output == "$items.add(3)2"
    assert params == {"a": {"b": 1}, "items": [1]}


@pytest.mark.parametrize("message", MESSAGES, ids=[m["msg_id"] for m in MESSAGES])
def test_message__historical_params__renders_what_was_sent(
    message: dict,
    converted_engine: Engine,
) -> None:
    # Given a message the legacy gateway sent from a known template
    template = TEMPLATES[message["tpl_id"]]
    expected = message["content"]
    if message["channel"] == "sms":
        expected = SIGN_PREFIX.sub("", expected, count=1)
    # When the converted template renders the same parameters
    content = _render(converted_engine, template["content"], message["tpl_params"])
    subject = (
        ""
        if message["channel"] == "sms"
        else _render(converted_engine, template["subject"], message["tpl_params"])
    )
    # Then the text is identical to what was sent
    assert content == expected
    assert subject == message["subject"]
