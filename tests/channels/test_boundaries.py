"""Transports know nothing of rows, HTTP APIs or the old world: they get an Envelope."""

import ast
from pathlib import Path

import notify.channels

CHANNELS_DIR = Path(notify.channels.__file__).parent
FORBIDDEN = ("notify.messaging", "notify.api", "compat", "rest_framework", "django.db")
# the rows of the tenants' provider configurations, and the modules that write them and read
# them into plain configuration for the transports
ROW_MODULES = {"models.py", "selectors.py", "services.py", "admin.py"}


def test_channel_modules__imports__never_rows_apis_or_the_legacy_world():
    offending = []
    for module in sorted(CHANNELS_DIR.glob("*.py")):
        if module.name in ROW_MODULES:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offending += [
                f"{module.name}: {name}"
                for name in names
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
            ]
    assert offending == []
