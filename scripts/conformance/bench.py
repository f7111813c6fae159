"""`make bench`, legacy part: the platform's legacy facade against the reference gateway on
this machine, in the same run.

- native throughput: signed `sms/send.do` calls per second answered `code 0` by the platform
  (native mode) and by the reference gateway, with the same client concurrency and duration;
  printed as a ratio (goal >= 2); then the floor on the same server, a view that only parses
  the form, stores one row and answers (notify/bench_floor.py), as a ratio of the reference;
- proxy overhead: the latency a call to the platform in proxy mode adds over the same call sent
  straight to the old gateway (`status.do` of a historical message, alternating), p50 and p99
  (goal p50 <= 3 ms).

The setup is `make conformance`'s (scripts/conformance/run.py), on a copy of the export whose
apps have no practical `qps_limit` (both sides would otherwise cap at the same 200 calls/s)."""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from compat.protocol import compute_sign
from scripts.conformance.run import ROOT, Conformance, SetupError, free_port, say
from scripts.conformance.standins import Standins

BENCH_APP_PREFIX = "ak_shop_"
SEND_PARAMS = {"tpl_id": "SMS_100001", "tpl_params": '{"code":"123456","minutes":5}'}


class QuickAckConnection(http.client.HTTPConnection):
    """A keep-alive connection that acknowledges at once: the old gateway's HTTP server writes
    an answer's headers and body separately, and a client's delayed ACK would add 40 ms to
    every call (Nagle), measuring TCP timers instead of the systems."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def getresponse(self) -> http.client.HTTPResponse:
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().getresponse()


class Client:
    """One keep-alive connection, signing each call as a business service does."""

    def __init__(self, base: str, app_key: str, secret: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.connection = QuickAckConnection(self.host, self.port, timeout=30)
        self.app_key, self.secret = app_key, secret

    def call(self, method: str, path: str, params: dict[str, str]) -> int:
        for attempt in range(3):
            full = {
                **params,
                "app_key": self.app_key,
                "timestamp": str(int(time.time() * 1000)),
                "nonce": secrets.token_hex(8),
            }
            full["sign"] = compute_sign(full, self.secret)
            query = urlencode(full)
            try:
                if method == "GET":
                    self.connection.request("GET", f"{path}?{query}")
                else:
                    self.connection.request(
                        "POST",
                        path,
                        body=query.encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
                    )
                return json.loads(self.connection.getresponse().read())["code"]
            except (OSError, http.client.HTTPException):
                # a keep-alive connection the server closed meanwhile: a new one
                self.connection.close()
                self.connection = QuickAckConnection(self.host, self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def throughput(
    base: str, app: dict, seconds: float, threads: int, path: str = "/gateway/sms/send.do"
) -> tuple[float, int]:
    """Successful sends per second over `seconds` with `threads` concurrent callers, and how
    many calls failed."""
    counts = [0] * threads
    failures = [0] * threads
    stop = time.monotonic() + seconds

    def caller(index: int) -> None:
        client = Client(base, app["app_key"], app["app_secret"])
        n = 0
        while time.monotonic() < stop:
            n += 1
            mobile = f"139{index:02d}{n % 1000000:06d}"
            code = client.call("POST", path, {**SEND_PARAMS, "mobiles": mobile})
            if code == 0:
                counts[index] += 1
            else:
                failures[index] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - started), sum(failures)


def proxy_overhead(direct: str, proxied: str, app: dict, msg_id: str, calls: int) -> list[float]:
    """Per pair of calls (straight, then through the platform), the added milliseconds."""
    straight = Client(direct, app["app_key"], app["app_secret"])
    through = Client(proxied, app["app_key"], app["app_secret"])
    params = {"msg_id": msg_id}
    for _ in range(50):  # warm both paths (connections, caches)
        straight.call("GET", "/gateway/message/status.do", params)
        through.call("GET", "/gateway/message/status.do", params)
    added = []
    for _ in range(calls):
        t0 = time.perf_counter()
        straight.call("GET", "/gateway/message/status.do", params)
        t1 = time.perf_counter()
        through.call("GET", "/gateway/message/status.do", params)
        t2 = time.perf_counter()
        added.append(((t2 - t1) - (t1 - t0)) * 1000)
    return added


class Bench(Conformance):
    def __init__(self, legacy: Path, seconds: float, threads: int, calls: int) -> None:
        super().__init__("bench", legacy, legacy / "cases" / "public.json", 0)
        self.seconds, self.threads, self.calls = seconds, threads, calls
        self.data = self.work / "data"

    def bench_data(self) -> dict:
        """A copy of the export whose apps have no practical rate limit; the bench's app."""
        shutil.copytree(self.legacy / "data", self.data)
        apps = [json.loads(line) for line in (self.data / "apps.jsonl").read_text().splitlines()]
        for app in apps:
            app["qps_limit"] = 1_000_000
        (self.data / "apps.jsonl").write_text(
            "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in apps), encoding="utf-8"
        )
        return next(a for a in apps if a["app_key"].startswith(BENCH_APP_PREFIX))

    def start_gateway(self, name: str) -> str:
        legacy = self.legacy
        self.legacy = self.work  # gateway.py from the legacy dir, data from the copy
        (self.work / "gateway.py").exists() or shutil.copy(legacy / "gateway.py", self.work)
        try:
            return super().start_gateway(name)
        finally:
            self.legacy = legacy

    def set_stage(self, env: dict[str, str], app_key: str, stage: str) -> None:
        self.shell(
            env,
            "from notify.tenants.models import Tenant; "
            f"Tenant.objects.filter(app_key={app_key!r}).update(stage={stage!r})",
        )

    def shell(self, env: dict[str, str], code: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def execute(self) -> tuple[int, str | None]:
        app = self.bench_data()
        msg_id = next(
            json.loads(line)["msg_id"]
            for line in (self.data / "messages.jsonl").read_text().splitlines()
            if line.startswith('{"msg_id"') and app["app_key"] in line
        )
        reference = self.start_gateway("reference")
        upstream = self.start_gateway("upstream")
        port = free_port()
        self.standins = Standins(f"http://127.0.0.1:{port}").start()
        env = self.platform_env(self.database_url(), upstream)
        # the platform as it is, plus the floor's URLs (notify.bench_floor)
        env["DJANGO_SETTINGS_MODULE"] = "notify.bench_floor_settings"
        self.queues = self.project_queues(env)
        self.manage("migrate", ["migrate", "--noinput"], env)
        self.shell(
            env,
            "from django.db import connection; from notify.bench_floor import CREATE_FLOOR_TABLE; "
            "connection.cursor().execute(CREATE_FLOOR_TABLE)",
        )
        self.manage(
            "import_legacy",
            ["import_legacy", str(self.data), "--stage", "legacy", "--no-progress"],
            env,
        )
        target = self.start_platform(env, port)

        added = proxy_overhead(upstream, target, app, msg_id, self.calls)
        cuts = statistics.quantiles(added, n=100)
        print(
            f"legacy proxy: added latency p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms "
            f"over {len(added)} status.do calls (goal p50 <= 3 ms)",
            flush=True,
        )
        self.set_stage(env, app["app_key"], "new")
        native_query = Client(target, app["app_key"], app["app_secret"])
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            native_query.call("GET", "/gateway/message/status.do", {"msg_id": msg_id})
            times.append((time.perf_counter() - t0) * 1000)
        print(f"legacy native status.do: p50 {statistics.median(times):.2f} ms", flush=True)
        # the floor first: what the platform's sends leave queued keeps its worker busy after
        floor_path = "/bench-floor/sms/send.do"
        throughput(target, app, 1.0, self.threads, floor_path)  # warm-up
        floor, floor_failures = throughput(target, app, self.seconds, self.threads, floor_path)
        throughput(target, app, 2.0, self.threads)  # warm-up
        ours, our_failures = throughput(target, app, self.seconds, self.threads)
        theirs, their_failures = throughput(reference, app, self.seconds, self.threads)
        print(
            f"legacy native sms/send.do: platform {ours:.0f} calls/s, reference {theirs:.0f} "
            f"calls/s, ratio {ours / theirs:.2f}x ({self.threads} callers, {self.seconds:g} s "
            f"each; failed calls {our_failures} vs {their_failures}; goal >= 2)",
            flush=True,
        )
        print(
            f"legacy native floor (a view that only parses the form, inserts one row and "
            f"answers, on the platform's server): {floor:.0f} calls/s = {floor / theirs:.2f}x "
            f"the reference (failed calls {floor_failures})",
            flush=True,
        )
        return 0, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--legacy-dir", type=Path, default=ROOT.parent / "shared" / "legacy")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)
    run = Bench(args.legacy_dir.resolve(), args.seconds, args.threads, args.calls)
    status = 2
    try:
        status, _ = run.execute()
    except SetupError as exc:
        say(f"setup failed: {exc}")
    finally:
        run.cleanup()
        if status != 0:
            run.print_tails()
        shutil.rmtree(run.logs, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
