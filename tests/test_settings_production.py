"""Production settings, as a process started with them sees them: each test runs `manage.py` in a
subprocess with an environment built from scratch (not this test run's, which holds test keys)."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
GENERATED = "<generate>"
PRINT_KEYS = "from django.conf import settings as s; print(s.SECRET_KEY, s.FIELD_ENCRYPTION_KEY)"


def documented_production_settings() -> dict[str, str]:
    """The variables in the README's "Production settings" block, `<generate>` placeholders
    included: the README cannot carry real secrets."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Production settings\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    settings = {}
    for line in block.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            settings[name.strip()] = value.strip()
    return settings


def run_manage(*args: str, env: dict[str, str], var_dir: Path) -> subprocess.CompletedProcess:
    clean_env = {"PATH": os.environ["PATH"], "NOTIFY_VAR_DIR": str(var_dir), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def valid_keys() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }


def test_check_deploy__documented_production_settings__no_issues(tmp_path):
    # Given exactly the README's production settings, with fresh values where it says generate
    documented = documented_production_settings()
    placeholders = {name for name, value in documented.items() if value == GENERATED}
    assert placeholders == {"SECRET_KEY", "FIELD_ENCRYPTION_KEY", "HEALTH_TOKEN"}
    env = {**documented, **valid_keys(), "HEALTH_TOKEN": secrets.token_urlsafe(32)}
    # When Django's deployment checks run with them
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, var_dir=tmp_path)
    # Then there is nothing to report: no error, no warning, nothing silenced
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize("how", ["unset", "empty"])
@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEY"])
def test_start__debug_off_and_key_missing__refuses_with_clear_message(tmp_path, missing, how):
    # Given DEBUG off and one of the two keys missing
    env = {"DEBUG": "0", **valid_keys()}
    if how == "unset":
        del env[missing]
    else:
        env[missing] = ""
    # When the platform starts
    result = run_manage("check", env=env, var_dir=tmp_path)
    # Then it refuses, in one line that names the missing key and how to make one
    assert result.returncode != 0
    assert f"notify: refusing to start: {missing} is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dev-keys.json").exists()


def test_start__field_encryption_key_not_a_fernet_key__refuses_without_echoing_it(tmp_path):
    env = {"DEBUG": "0", **valid_keys()}
    env["FIELD_ENCRYPTION_KEY"] = env["FIELD_ENCRYPTION_KEY"] + ",not-a-key-but-secret-text"
    result = run_manage("check", env=env, var_dir=tmp_path)
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY: key 2 of 2 is not a Fernet key" in result.stderr
    assert "not-a-key-but-secret-text" not in result.stderr


def test_wsgi_application__debug_off_and_no_secret_key__not_importable(tmp_path):
    # A production server (gunicorn, uwsgi) imports notify.wsgi: it must fail the same way.
    env = {"DEBUG": "0", "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    result = subprocess.run(
        [sys.executable, "-c", "import notify.wsgi"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "NOTIFY_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


def test_start__debug_on_without_keys__development_keys_kept_in_var_dir(tmp_path):
    # Given DEBUG on (as `make run` sets it) and no keys in the environment
    # When two commands run one after the other
    first = run_manage("shell", "-c", PRINT_KEYS, env={"DEBUG": "1"}, var_dir=tmp_path)
    second = run_manage("shell", "-c", PRINT_KEYS, env={"DEBUG": "1"}, var_dir=tmp_path)
    # Then both use the same generated keys, kept in the var directory for this machine only
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    secret_key, field_key = first.stdout.splitlines()[-1].split()
    assert len(secret_key) >= 50
    Fernet(field_key.encode())  # a valid key
    assert (tmp_path / "dev-keys.json").stat().st_mode & 0o077 == 0


def test_encrypted_field__key_rotated__old_data_readable_new_data_under_new_key(db, settings):
    # Given a secret stored under the old key
    from notify.tenants import crypto
    from notify.tenants.models import Tenant

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old_key
    tenant = Tenant.objects.create(slug="bank", name="Bank", app_key="ak", app_secret="s3cr3t")
    # When the new key is put first, the old one kept second
    settings.FIELD_ENCRYPTION_KEY = f"{new_key},{old_key}"
    # Then the old data still reads, and new data is encrypted under the new key only
    assert Tenant.objects.get(pk=tenant.pk).app_secret == "s3cr3t"
    token = crypto.encrypt("fresh").removeprefix("fernet:")
    assert Fernet(new_key.encode()).decrypt(token.encode()) == b"fresh"
