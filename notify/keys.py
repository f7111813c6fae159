"""The platform's two secrets, SECRET_KEY and FIELD_ENCRYPTION_KEY: checked when settings load,
never invented in production.

With DEBUG off both must come from the environment, or the process refuses to start. With DEBUG
on (`make run`), a missing one is taken from development keys generated once and kept in the var
directory, so data encrypted yesterday is still readable today. No key is written in the
repository: a production process can only get one from its own environment.

No Django import here: settings.py uses this module before Django is set up."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

GENERATE_SECRET_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
GENERATE_FERNET_KEY = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
DEV_KEYS_FILE = "dev-keys.json"


class KeyConfigurationError(Exception):
    """A secret is missing or malformed; the message says which and how to make one."""


def fernet_keys(value: str) -> list[Fernet]:
    """FIELD_ENCRYPTION_KEY: one Fernet key, or several separated by commas, newest first (the
    first encrypts, all decrypt, so a key can be rotated without losing data)."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise KeyConfigurationError("FIELD_ENCRYPTION_KEY is empty.")
    keys = []
    for position, part in enumerate(parts, start=1):
        try:
            keys.append(Fernet(part.encode()))
        except ValueError:  # binascii.Error is a ValueError
            # The value itself is a secret: never repeat it in the message.
            raise KeyConfigurationError(
                f"FIELD_ENCRYPTION_KEY: key {position} of {len(parts)} is not a Fernet key "
                f"(32 url-safe base64-encoded bytes). Generate one with: {GENERATE_FERNET_KEY}"
            ) from None
    return keys


def require_keys(secret_key: str, field_encryption_key: str) -> None:
    """Raises KeyConfigurationError unless both secrets are present and well-formed."""
    if not secret_key.strip():
        raise KeyConfigurationError(
            "SECRET_KEY is not set. With DEBUG off the platform needs an explicit SECRET_KEY "
            f"(50 or more random characters), e.g. from: {GENERATE_SECRET_KEY} . "
            "For local development set DEBUG=1 (`make run` does): a development key is then "
            "generated and kept in the var directory."
        )
    if not field_encryption_key.strip():
        raise KeyConfigurationError(
            "FIELD_ENCRYPTION_KEY is not set. With DEBUG off the platform needs an explicit "
            "Fernet key to encrypt secrets at rest (several, comma-separated and newest first, "
            f"to rotate). Generate one with: {GENERATE_FERNET_KEY} . "
            "For local development set DEBUG=1 (`make run` does)."
        )
    fernet_keys(field_encryption_key)


def development_keys(var_dir: Path) -> dict[str, str]:
    """The development keys kept in `var_dir`, created on first use.

    Several processes (web server, worker) may start at once: the file is written aside and
    linked into place, which fails if another process got there first; then its keys win."""
    path = var_dir / DEV_KEYS_FILE
    if not path.exists():
        keys = {
            "SECRET_KEY": "dev-" + secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
        handle, temporary = tempfile.mkstemp(dir=var_dir, prefix=".dev-keys-")
        try:
            with os.fdopen(handle, "w") as file:  # mkstemp creates it readable by us only
                json.dump(keys, file)
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return json.loads(path.read_text())
