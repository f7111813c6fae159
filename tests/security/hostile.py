"""Hostile traffic for a running notify server: every payload of the corpus, every runaway
template and a few hostile conversions, sent through HTTP with a generous client timeout.

Usable outside pytest (e.g. from `make bench`): no Django, no pytest.

    from tests.security.hostile import HOSTILE_REQUESTS, run_hostile_requests
    timings = run_hostile_requests("http://127.0.0.1:8000", api_key)
    name, status, seconds = max(timings, key=lambda t: t[2])

A status is the HTTP status, or NO_RESPONSE (the connection dropped or was refused),
TIMED_OUT (no answer within the client timeout) or NOT_SENT (the overall deadline passed first).
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.security.corpus import (
    DEFAULT_DATA,
    build_data,
    jinja_payloads,
    runaway_cases,
    velocity_payloads,
)

NO_RESPONSE = 0
TIMED_OUT = -1
NOT_SENT = -2
# What a hostile request may answer: the budget's own clear error or a normal answer.
ACCEPTED_STATUSES = frozenset({200, 201, 400, 422})
CLIENT_TIMEOUT = 30.0
DEADLINE = 1200.0

MAX_CONVERT_SOURCE = 200_000
# A runaway request must not take the machine: the server's address space is capped far above
# what the tests allow it (256 MB resident), so the cap only stops a failure from spreading.
SERVER_ADDRESS_SPACE = 6 << 30


def cap_server_address_space() -> None:
    """`preexec_fn` of the server process that hostile requests are sent to."""
    resource.setrlimit(resource.RLIMIT_AS, (SERVER_ADDRESS_SPACE, SERVER_ADDRESS_SPACE))


def peak_resident_bytes(pid: int) -> int:
    """A process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


@dataclass(frozen=True)
class HostileRequest:
    name: str
    # "template": (convert, for Velocity,) create, then render; "convert": convert only
    kind: str
    engine: str  # "jinja2" | "velocity" (the source is Velocity, converted through the API)
    source: str
    data: dict[str, Any] = field(default_factory=dict)


def _hostile_requests() -> list[HostileRequest]:
    hostile = [
        HostileRequest(f"ssti:{p.id}", "template", "jinja2", p.source, {**DEFAULT_DATA, **p.data})
        for p in jinja_payloads()
    ]
    hostile += [
        HostileRequest(
            f"velocity-ssti:{p.id}", "template", "velocity", p.source, {**DEFAULT_DATA, **p.data}
        )
        for p in velocity_payloads()
    ]
    hostile += [
        HostileRequest(f"runaway:{case.id}", "template", case.env, case.source, case.data)
        for case in runaway_cases()
    ]
    hostile += [
        # reference-heavy sources make the converter's work grow much faster than their size
        HostileRequest("convert:200k-references", "convert", "velocity", _fill("$a ")),
        HostileRequest(
            "convert:200k-interpolated",
            "convert",
            "velocity",
            '#set($x = "' + "$y" * ((MAX_CONVERT_SOURCE - 12) // 2) + '")',
        ),
        HostileRequest("convert:200k-sets", "convert", "velocity", _fill("#set($x = 1)")),
        HostileRequest("convert:200k-nested-foreach", "convert", "velocity", _nested_foreach()),
        HostileRequest("convert:over-the-limit", "convert", "velocity", "a" * 200_001),
    ]
    return hostile


def _fill(unit: str) -> str:
    return unit * (MAX_CONVERT_SOURCE // len(unit))


def _nested_foreach() -> str:
    depth = MAX_CONVERT_SOURCE // 30
    return "#foreach($i in [1..2])" * depth + "#end" * depth


HOSTILE_REQUESTS: list[HostileRequest] = _hostile_requests()


def json_body(payload: dict[str, Any], marker: str) -> str:
    """JSON text of `payload` with its data expanded; a {"$nest": n} value becomes a list nested
    n deep, written out directly (json.dumps itself would refuse the depth)."""
    nests: dict[str, int] = {}

    def stand_in(value: Any) -> Any:
        if isinstance(value, dict) and "$nest" in value:
            token = f"@NEST{len(nests)}@"
            nests[token] = value["$nest"]
            return token
        if isinstance(value, dict) and "$repeat" not in value:
            return {key: stand_in(item) for key, item in value.items()}
        if isinstance(value, list):
            return [stand_in(item) for item in value]
        return build_data(value, marker)

    text = json.dumps(stand_in(payload))
    for token, depth in nests.items():
        text = text.replace(json.dumps(token), "[" * depth + "]" * depth)
    return text


def run_hostile_requests(
    base_url: str,
    api_key: str,
    *,
    marker_path: str | Path | None = None,
    timeout: float = CLIENT_TIMEOUT,
    deadline: float = DEADLINE,
    requests_to_send: list[HostileRequest] | None = None,
) -> list[tuple[str, int, float]]:
    """Sends every hostile request; returns (name, status, seconds) for each HTTP request made.

    `marker_path` replaces `@MARKER@` in payloads (a file only an escaped payload creates);
    `deadline` bounds the whole run: requests not sent by then are reported as NOT_SENT.
    """
    marker = str(marker_path or Path(tempfile.gettempdir()) / "notify-hostile-marker")
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    )
    started = time.monotonic()
    timings: list[tuple[str, int, float]] = []

    def send(name: str, path: str, payload: dict[str, Any]) -> requests.Response | None:
        if time.monotonic() - started > deadline:
            timings.append((name, NOT_SENT, 0.0))
            return None
        body = json_body(payload, marker)
        sent = time.monotonic()
        try:
            response = session.post(f"{base_url}{path}", data=body.encode(), timeout=timeout)
        except requests.Timeout:
            timings.append((name, TIMED_OUT, time.monotonic() - sent))
            return None
        except requests.ConnectionError:
            timings.append((name, NO_RESPONSE, time.monotonic() - sent))
            return None
        timings.append((name, response.status_code, time.monotonic() - sent))
        return response

    for number, hostile in enumerate(requests_to_send or HOSTILE_REQUESTS):
        source = hostile.source.replace("@MARKER@", marker)
        if hostile.kind == "convert":
            send(f"{hostile.name}:convert", "/v2/templates/convert", {"source": source})
            continue
        # (a Velocity source is created as it is: the platform converts it)
        key = f"hostile-{number}-{uuid.uuid4().hex[:8]}"
        created = send(
            f"{hostile.name}:create",
            "/v2/templates",
            {
                "key": key,
                "channel": "sms",
                "subject": "",
                "body": source,
                "engine": hostile.engine,
            },
        )
        if created is None or created.status_code != 201:
            continue
        send(
            f"{hostile.name}:render",
            f"/v2/templates/{key}/render",
            {"data": hostile.data, "version": 1},
        )
    return timings
