import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def run_verify(templates: Path, samples: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "verify_templates",
            "--templates",
            str(templates),
            "--samples",
            str(samples),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_verify_templates__legacy_samples__all_pass_exit_0():
    data = Path(settings.LEGACY_DATA_DIR)
    result = run_verify(data / "templates.jsonl", data / "samples.jsonl")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    passed = sum(1 for line in (data / "samples.jsonl").read_text().splitlines() if line.strip())
    assert last == f"{passed} passed, 0 failed"


def test_verify_templates__wrong_expectation__fail_line_with_diff_exit_1(tmp_path):
    # Given a template set brought from elsewhere, with one wrong expected output
    templates = tmp_path / "templates.jsonl"
    samples = tmp_path / "samples.jsonl"
    row = {
        "tpl_id": "T1",
        "channel": "sms",
        "subject": "",
        "content": "Hi ${name}!#if($vip) VIP#end",
    }
    templates.write_text(json.dumps(row) + "\n")
    samples.write_text(
        "\n".join(
            json.dumps(s, ensure_ascii=False)
            for s in [
                {
                    "tpl_id": "T1",
                    "params": {"name": "Li", "vip": True},
                    "expected_subject": "",
                    "expected_content": "Hi Li! VIP",
                },
                {
                    "tpl_id": "T1",
                    "params": {"name": "Wu"},
                    "expected_subject": "",
                    "expected_content": "Hi Wang!",
                },
                {"tpl_id": "NOPE", "params": {}, "expected_content": ""},
            ]
        )
    )
    # When
    result = run_verify(templates, samples)
    # Then
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "1 passed, 2 failed"
    assert any(line.startswith("FAIL sample 2 (T1): content differs") for line in lines)
    assert "-Hi Wang!" in result.stdout and "+Hi Wu!" in result.stdout
    assert any("sample 3 (NOPE): template not found" in line for line in lines)
