"""The child process of legacy_render.py: renders airspeed templates under resource limits.

Run as a script (`python -I -S legacy_child.py SETTINGS`) by LegacyRenderer, never imported:
it uses only the standard library and airspeed (whose directory is in SETTINGS), so it starts
fast and holds nothing of the application.  SETTINGS (JSON) gives the limits.

Protocol: the parent writes cases, each an 8-byte big-endian length and a pickled
(source, params); the child answers each with one JSON line on its original stdout:
{"output": text} | {"error": "ClassName: message"} | {"limit": "memory" | "output"},
with "retire": true when it exits after that answer.  The first line is {"ready": true}.
The child exits when its input closes.
"""

import json
import math
import os
import pickle
import resource
import struct
import sys

FRAME = struct.Struct(">Q")
MEMORY_EXIT = 3  # the exit status when even reporting a MemoryError failed
MAX_CACHED_TEMPLATES = 64


def read_exactly(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def caused_by_memory_error(exc: BaseException) -> bool:
    """airspeed wraps any error of a render in a TemplateExecutionError (its __cause__)."""
    seen = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, MemoryError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


class Renderer:
    def __init__(self, airspeed: object, settings: dict) -> None:
        self.airspeed = airspeed
        self.cpu_cap = settings["child_cpu_seconds"]
        self.per_case = settings["cpu_seconds"]
        self.max_output = settings["max_output_chars"]
        self.templates: dict = {}

    def render(self, case: bytes) -> dict:
        """The answer for one pickled (source, params) case; MemoryError propagates."""
        source, params = pickle.loads(case)  # noqa: S301 - written by our parent
        # this case's CPU time: the soft limit (SIGXCPU) is raised past what is used so far
        soft = min(self.cpu_cap, math.ceil(cpu_used() + self.per_case))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, self.cpu_cap))
        try:
            template = self.templates.get(source)
            if template is None:
                template = self.airspeed.Template(source)
                template.ensure_compiled()
                if len(self.templates) >= MAX_CACHED_TEMPLATES:
                    self.templates.clear()
                self.templates[source] = template
            output = template.merge(params)  # `params` is this case's own copy
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any error is the gateway's system error
            if caused_by_memory_error(exc):
                raise MemoryError from exc
            try:
                return {"error": f"{type(exc).__name__}: {exc}"}
            except Exception:  # noqa: BLE001 - an error whose text fails
                return {"error": type(exc).__name__}
        if len(output) > self.max_output:
            return {"limit": "output"}
        return {"output": output}


def main(settings: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    memory = settings["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu_cap = settings["child_cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_cap, cpu_cap))
    # answers go to a private copy of stdout; anything printed goes nowhere
    out = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDWR), 1)

    def answer(message: dict) -> None:
        view = memoryview((json.dumps(message) + "\n").encode("ascii"))
        while view:
            view = view[os.write(out, view) :]

    sys.path.append(settings["airspeed_path"])
    import airspeed

    renderer = Renderer(airspeed, settings)
    answer({"ready": True})
    while True:
        header = read_exactly(0, FRAME.size)
        body = read_exactly(0, FRAME.unpack(header)[0]) if header is not None else None
        if body is None:
            return  # the parent closed our input
        try:
            message = renderer.render(body)
            if cpu_used() + settings["cpu_seconds"] > cpu_cap:
                message["retire"] = True  # the next case might not get its CPU time
            answer(message)
        except MemoryError:
            renderer.templates.clear()
            try:
                answer({"limit": "memory", "retire": True})
            except MemoryError:
                os._exit(MEMORY_EXIT)
            return
        if message.get("retire"):
            return


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
