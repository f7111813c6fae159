"""The converted-template ("velocity") environment: its helper filters are its attack surface.

For each helper of templates_store.velocity.runtime.FILTERS there are attempts to reach an
internal object through it, written as the raw Jinja a converter could have produced (a helper
added without an attempt here fails the suite). Then the same attacks written as Velocity
source, through convert() and the velocity engine (tests/security/data/velocity_ssti.jsonl).
Every access the allowlist refuses is a TemplateSecurityError; misuse that is not an access
(a non-macro body, say) may be any TemplateRenderError; nothing runs a command or writes a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from templates_store.velocity.runtime import FILTERS
from tests.security.checks import (
    assert_no_marker,
    assert_refused_or_harmless,
    assert_render_error,
    assert_security_error,
)
from tests.security.corpus import DEFAULT_DATA, build_data, velocity_payloads
from tests.security.isolation import Job, run_isolated


@dataclass(frozen=True)
class Attack:
    source: str
    # "security": TemplateSecurityError; "error": any TemplateRenderError (misuse, not an
    # access); "safe": any TemplateRenderError or a harmless answer
    expect: str = "security"


# Objects a converted template could get hold of: a #foreach generator, the namespace chain,
# a bound str.format whose fields walk attributes with Python's own rules, a Jinja macro.
GEN = "(1|vfor('i',[1]))"
ROOT = "{% set _v = _vdata|vroot %}"
MACRO = "{% macro m(_v) %}x{% endmacro %}"
RAW_FORMAT = "('{0.__class__.__init__.__globals__}'|vp('format'))"
FRAME_BUILTINS = GEN + "|vp('gi_frame')|vp('f_builtins')"
RUN = "touch @MARKER@"

HELPER_ATTACKS: dict[str, list[Attack]] = {
    "vroot": [
        Attack("{{ (_vdata|vroot).set_inherited('x', 1) }}"),
        Attack("{{ (" + GEN + "|vroot).parent.gi_frame.f_globals }}"),
    ],
    "vn": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vn('__builtins__')|vn('open') }}"),
        Attack("{{ " + FRAME_BUILTINS + "|vn('__import__') }}"),
        Attack("{{ self|vn('_TemplateReference__context') }}", "safe"),
    ],
    "vnc": [
        Attack(
            "{{ " + FRAME_BUILTINS + "|vnc('__import__', ['os'])|vc('system', ['" + RUN + "']) }}"
        ),
        Attack("{{ " + FRAME_BUILTINS + "|vnc('open', ['@MARKER@', 'w'])|vc('write', ['x']) }}"),
        Attack("{{ {'f': ''|vp('format')}|vnc('f', []) }}", "safe"),
        Attack(MACRO + "{{ {'f': m}|vnc('f', [_vdata]) }}", "safe"),
    ],
    "vni": [
        Attack(
            "{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vni('__builtins__', '__import__') }}"
        ),
        Attack("{{ {'g': " + GEN + "|vp('gi_frame')}|vni('g', 'f_globals') }}"),
        Attack(MACRO + "{{ {'m': m}|vni('m', '_func') }}", "safe"),
    ],
    "vp": [
        Attack("{{ ''|vp('__class__') }}"),
        Attack("{{ " + GEN + "|vp('gi_frame') }}"),
        Attack("{{ " + GEN + "|vp('gi_code')|vp('co_consts') }}"),
        Attack("{{ _vdata|vp('keys')|vp('__self__') }}"),
        Attack("{{ ''|vp('format')|vp('__self__') }}"),
        Attack("{{ 1|vp('real')|vp('__class__') }}"),
        Attack("{{ namespace|vp('mro') }}", "error"),
        Attack(MACRO + "{{ m|vp('_func')|vp('__globals__') }}"),
        Attack(MACRO + "{{ m|vp('func_globals') }}", "safe"),
    ],
    "vpi": [
        Attack("{{ " + GEN + "|vpi('gi_frame', 0) }}"),
        Attack("{{ " + GEN + "|vp('gi_frame')|vpi('f_globals', '__builtins__') }}"),
        Attack("{{ ''|vpi('__class__', 0) }}"),
        Attack("{{ namespace|vpi('mro', 0) }}", "error"),
    ],
    "vc": [
        Attack("{{ _vdata|vc('__init__', []) }}"),
        Attack("{{ '{0.gi_frame.f_globals}'|vc('format', [" + GEN + "]) }}"),
        Attack("{{ '{0.gi_frame.f_builtins[__import__]}'|vc('format', [" + GEN + "]) }}"),
        Attack("{{ '{a.gi_frame}'|vc('format_map', [{'a': " + GEN + "}]) }}"),
        Attack("{{ '{0.__class__}'|vc('format', [1]) }}"),
        Attack("{{ '{0.parent.gi_frame}'|vc('format', [" + GEN + "|vroot]) }}"),
        Attack("{{ " + GEN + "|vc('send', [None]) }}"),
        Attack("{{ " + GEN + "|vc('throw', [_vdata]) }}"),
        Attack("{{ namespace|vc('mro', []) }}", "error"),
    ],
    # the lazy-call probes answer a bool: whatever they find stays inside them
    "vhas": [
        Attack("{{ " + GEN + "|vhas('gi_frame') }}", "safe"),
        Attack("{{ ''|vhas('__class__') }}", "safe"),
        Attack("{{ (" + GEN + "|vroot)|vhas('parent') }}", "safe"),
        Attack("{{ (" + GEN + "|vhas('gi_frame'))|vp('__class__') }}"),
    ],
    "vhasi": [
        Attack("{{ " + GEN + "|vhasi('gi_frame') }}", "safe"),
        Attack("{{ (" + GEN + "|vhasi('gi_code'))|vp('__class__') }}"),
    ],
    "vhasn": [
        Attack("{{ {'g': " + GEN + "}|vhasn('g') }}", "safe"),
        Attack("{{ (_vdata|vroot)|vhasn('__builtins__') }}", "safe"),
        Attack("{{ ({'g': " + GEN + "}|vhasn('g'))|vp('__class__') }}"),
    ],
    "vi": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vi('__builtins__') }}"),
        Attack("{{ namespace|vc('mro', [])|vi(1) }}", "error"),
        Attack("{{ ''|vp('format')|vi(0) }}", "error"),
    ],
    "vo": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vo('$x') }}"),
        Attack("{{ dict|vo('$x') }}", "safe"),
    ],
    "vno": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vno('__builtins__', '$x') }}"),
        Attack("{{ " + FRAME_BUILTINS + "|vno('open', '$x') }}"),
    ],
    "vnt": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vnt('os', '$x') }}"),
        Attack("{{ " + FRAME_BUILTINS + "|vnt('eval', '$x') }}"),
    ],
    "vot": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vot('$x') }}"),
        Attack("{{ namespace|vot('$x') }}", "safe"),
    ],
    "vqt": [
        Attack("{{ " + GEN + "|vp('gi_code')|vqt }}"),
        Attack("{{ range|vqt }}", "safe"),
    ],
    "vq": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_locals')|vq }}"),
        Attack("{{ cycler|vq }}", "safe"),
    ],
    "vs": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vs }}"),
        Attack(MACRO + "{{ m|vp('_func')|vs }}"),
        Attack("{{ lipsum|vs }}", "safe"),
    ],
    "valt": [
        Attack("{{ None|valt(" + GEN + "|vp('gi_frame')) }}"),
        Attack("{{ None|valt(dict) }}", "safe"),
    ],
    "vand": [Attack("{{ " + GEN + "|vp('gi_frame')|vand(true) }}")],
    "vor": [Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_back')|vor(false) }}")],
    "vdiv": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_lineno')|vdiv(1) }}"),
        Attack("{{ namespace|vdiv(1) }}", "error"),
    ],
    "vrange": [
        Attack("{{ (1|vrange(3))|vp('__class__') }}"),
        Attack("{{ (1|vrange(3))|vp('count')|vp('__self__') }}"),
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_lineno')|vrange(3) }}"),
    ],
    "vset": [
        Attack(
            ROOT
            + "{% do _v|vset('f', "
            + GEN
            + "|vp('gi_frame')) %}{{ _v|vn('f')|vp('f_globals') }}"
        ),
        Attack(ROOT + "{% do _v|vset('g', " + GEN + ") %}{{ _v|vn('g')|vp('gi_frame') }}"),
    ],
    "vsetp": [
        Attack("{{ (_vdata|vroot)|vsetp(['vn'], 1) }}"),
        Attack(ROOT + "{{ _v|vsetp(['x'], " + GEN + ") }}"),
        Attack(
            "{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vsetp(['ADDITIONAL_METHODS'], {}) }}"
        ),
        Attack(
            ROOT + MACRO + "{% do _v|vdefine('d', m, []) %}{{ _v|vsetp(['d', 'body'], 1) }}",
            "error",
        ),
    ],
    "vfor": [
        Attack("{{ (1|vfor('i',[1]))|vp('gi_frame') }}"),
        Attack("{{ (_vdata|vfor('i', [1]))|vp('gi_code')|vp('co_names') }}"),
        Attack("{{ '{0.gi_frame.f_back}'|vc('format', [(_vdata|vfor('i', [1]))]) }}"),
        Attack(
            "{% for _v1 in (_vdata|vroot)|vfor('i', [1]) %}"
            "{{ _v1|vn('foreach')|vp('__class__') }}{% endfor %}"
        ),
    ],
    "vdefmacro": [
        Attack(
            ROOT + "{% do _v|vdefmacro('x', " + RAW_FORMAT + ", ['a']) %}{{ _v|vmacro('x', [1]) }}",
            "error",
        ),
        Attack(
            ROOT
            + "{% do _v|vdefmacro('y', "
            + FRAME_BUILTINS
            + "|vn('exec'), []) %}{{ _v|vmacro('y', []) }}"
        ),
        Attack(ROOT + "{% do _v|vdefmacro('z', range, []) %}{{ _v|vmacro('z', []) }}", "error"),
    ],
    "vdefine": [
        Attack(ROOT + "{% do _v|vdefine('d', " + RAW_FORMAT + ", []) %}{{ _v|vn('d') }}", "error"),
        Attack(
            ROOT + MACRO + "{% do _v|vdefine('d', m, []) %}{{ _v|vp('d')|vp('call') }}", "error"
        ),
        Attack(
            ROOT + MACRO + "{% do _v|vdefine('d', m, []) %}{{ _v|vp('d')|vp('body')|vp('_func') }}"
        ),
    ],
    "vmacro": [
        Attack(
            ROOT + "{% do _v|vset('#x', " + RAW_FORMAT + ") %}{{ _v|vmacro('x', []) }}", "error"
        ),
        Attack(
            ROOT + "{% do _v|vdefmacro('w', ''|vp('format'), []) %}{{ _v|vmacro('w', []) }}",
            "error",
        ),
    ],
    "vblock": [
        Attack(ROOT + "{{ _v|vblock(" + RAW_FORMAT + ") }}", "error"),
        Attack(ROOT + "{{ _v|vblock('{0.parent.gi_frame}'|vp('format')) }}", "error"),
        Attack(ROOT + "{{ _v|vblock(range) }}", "error"),
    ],
    "vstop": [Attack("{{ " + GEN + "|vp('gi_frame')|vstop }}")],
    "vraise": [
        Attack("{{ " + GEN + "|vp('gi_frame')|vp('f_globals')|vraise }}"),
        Attack("{{ " + GEN + "|vraise }}", "error"),
    ],
    "vevaluate": [
        Attack(ROOT + "{{ _v|vevaluate('$x.__class__.__mro__') }}"),
        Attack(ROOT + '{{ _v|vevaluate("#set($y = $x.__class__)$y") }}'),
        Attack(ROOT + "{{ _v|vevaluate('#set($f = \"{0.__class__}\")$f.format($x)') }}"),
        Attack(ROOT + "{{ _v|vevaluate(\"{{ ''.__class__.__mro__ }}\") }}", "safe"),
        Attack(
            ROOT + "{{ _v|vevaluate(\"{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}\") }}",
            "safe",
        ),
        Attack(ROOT + "{{ _v|vevaluate(\"{{ (1|vfor('i',[1]))|vp('gi_frame') }}\") }}", "safe"),
        Attack("{{ " + GEN + "|vp('gi_frame')|vevaluate('$f_globals') }}"),
    ],
}

HELPER_CASES = [
    pytest.param(helper, attack, id=f"{helper}-{number}")
    for helper in sorted(FILTERS)
    for number, attack in enumerate(HELPER_ATTACKS.get(helper, []), start=1)
]
VELOCITY_PAYLOADS = velocity_payloads()


def _check(outcome, expect: str, secrets: list[str]) -> None:  # noqa: ANN001
    if expect == "security":
        assert_security_error(outcome)
    elif expect == "error":
        assert_render_error(outcome)
    else:
        # (a bound method prints airspeed's repr, address included: docs/templates.md)
        assert_refused_or_harmless(outcome, secrets, addresses=False)


@pytest.mark.parametrize("helper", sorted(FILTERS))
def test_velocity_helper__listed_in_filters__has_attacks_here(helper):
    # Given a helper registered for converted templates
    # When the suite looks for attempts to abuse it
    attacks = HELPER_ATTACKS.get(helper, [])
    # Then there is at least one (a new helper needs its own)
    assert attacks, f"no attack written for the helper {helper!r}: add one to HELPER_ATTACKS"


def test_helper_attacks__every_key__is_a_registered_helper():
    # Given the attacks written per helper / When compared with the registered helpers
    stale = set(HELPER_ATTACKS) - set(FILTERS)
    # Then none targets a helper that no longer exists
    assert stale == set(), f"attacks for helpers that are gone: {sorted(stale)}"


@pytest.mark.parametrize(("helper", "attack"), HELPER_CASES)
def test_helper_attack__velocity_engine__refused(helper, attack, marker, secrets):
    # Given raw Jinja, as a converter could have produced it, that abuses `helper`
    job = Job(
        source=attack.source.replace("@MARKER@", str(marker)),
        data=build_data(DEFAULT_DATA, marker),
        env="velocity",
    )
    # When the velocity engine compiles and renders it
    outcome = run_isolated(job)
    # Then no command ran, and the access is refused (misuse fails)
    assert_no_marker(marker)
    _check(outcome, attack.expect, secrets)


@pytest.mark.parametrize("payload", VELOCITY_PAYLOADS, ids=[p.id for p in VELOCITY_PAYLOADS])
def test_velocity_source_payload__converted_and_rendered__refused(payload, marker, secrets):
    # Given a Velocity template that reaches for Python (or Java) internals
    job = Job(
        source=payload.source_for(marker),
        data=payload.data_for(marker),
        env="velocity",
        velocity_source=True,
    )
    # When it is converted and the conversion rendered by the velocity engine
    outcome = run_isolated(job)
    # Then no command ran, and the access is refused
    assert_no_marker(marker)
    _check(outcome, payload.expect, secrets)
