"""memcli schedule: crontab lines and systemd units with this memcli's absolute path and configuration."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from memcli.dsn import without_password
from memcli.jobs.schedule import memcli_executable

VENV_MEMCLI = Path(sys.executable).parent / "memcli"
CRON_LINE = re.compile(r"^(\S+ ){5}(/\S+)( .*)? -q maintain (daily|weekly|monthly) --json >> (/\S+) 2>&1$")


def job_lines(text: str) -> dict[str, re.Match[str]]:
    matches = [CRON_LINE.match(line) for line in text.splitlines()]
    return {m.group(4): m for m in matches if m}


def test_console_script_prints_its_absolute_path_and_the_three_jobs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MEMCLI_DATABASE_URL": "postgresql://app:s3cret@db.example.com:5432/app?sslmode=require",
    }
    done = subprocess.run(
        [str(VENV_MEMCLI), "schedule"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    out = done.stdout
    lines = job_lines(out)
    assert set(lines) == {"daily", "weekly", "monthly"}
    for match in lines.values():
        assert match.group(2) == str(VENV_MEMCLI)
        assert Path(match.group(5)).is_absolute()
    assert "s3cret" not in out
    assert "MEMCLI_DATABASE_URL=postgresql://app@db.example.com:5432/app?sslmode=require" in out
    assert "~/.pgpass" in out
    assert "db.example.com:5432:app:app:PASSWORD" in out
    assert "ExecStart=" + str(VENV_MEMCLI) in out
    for job in ("daily", "weekly", "monthly"):
        assert f"memcli-{job}.timer" in out and f"Unit=memcli-maintain@{job}.service" in out
    assert "SuccessExitStatus=75" in out
    assert "flock" not in out


def test_config_file_is_passed_by_absolute_path(tmp_path: Path, cli: Any, monkeypatch: Any) -> None:
    config = tmp_path / "memcli.toml"
    config.write_text('[database]\ndsn = "postgresql://app@db/app"\n')
    monkeypatch.setattr(sys, "argv", [str(VENV_MEMCLI)])
    result = cli("--config", str(config), "schedule", "--log-dir", str(tmp_path / "logs"))
    assert result.exit_code == 0, result.stderr
    lines = job_lines(result.stdout)
    assert set(lines) == {"daily", "weekly", "monthly"}
    assert lines["daily"].group(3).strip() == f"--config {config}"
    assert lines["daily"].group(5) == str(tmp_path / "logs" / "daily.log")
    assert "MEMCLI_DATABASE_URL=" not in result.stdout


def test_embedded_server_home_is_kept(tmp_path: Path, cli: Any, monkeypatch: Any) -> None:
    home = tmp_path / "home with space"
    monkeypatch.setenv("MEMCLI_HOME", str(home))
    result = cli("schedule", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["environment"] == {"MEMCLI_HOME": str(home)}
    assert f"MEMCLI_HOME={home}" in plan["crontab"]
    assert any("maintain weekly" in line for line in plan["crontab"])
    assert "Environment='MEMCLI_HOME=" in plan["systemd"]["memcli-maintain@.service"]
    assert Path(plan["executable"][0]).is_absolute()


def test_percent_signs_are_escaped_for_cron(tmp_path: Path, cli: Any) -> None:
    result = cli("schedule", "--log-dir", str(tmp_path / "100%"))
    assert result.exit_code == 0
    cron = [line for line in result.stdout.splitlines() if line[:1].isdigit() and "maintain" in line]
    assert len(cron) == 3
    assert all("100\\%" in line and "100%" not in line.replace("100\\%", "") for line in cron)


def test_executable_resolution(tmp_path: Path) -> None:
    assert memcli_executable(str(VENV_MEMCLI)) == [str(VENV_MEMCLI)]
    fallback = memcli_executable(str(tmp_path / "__main__.py"))
    assert Path(fallback[0]).is_absolute()
    assert fallback[0].endswith("memcli") or fallback[1:] == ["-m", "memcli"]


def test_without_password() -> None:
    assert without_password("postgresql://u:p%40ss@h:5433/d?password=x&sslmode=require") == (
        "postgresql://u@h:5433/d?sslmode=require",
        True,
    )
    assert without_password("postgresql://u@h/d") == ("postgresql://u@h/d", False)
    stripped, had = without_password("host=h user=u password='a b' dbname=d")
    assert had and "password" not in stripped and "host=h" in stripped


def test_a_password_with_reserved_characters_stays_out_of_crontab_and_units(cli: Any) -> None:
    for dsn in ("postgresql://u:Sec?ret9@localhost/db", "postgresql://u:Sec#ret9@localhost/db"):
        result = cli("--dsn", dsn, "schedule", "--json")
        assert result.exit_code == 0, result.stderr
        plan = json.loads(result.stdout)
        assert plan["environment"] == {"MEMCLI_DATABASE_URL": "postgresql://u@localhost/db"}
        assert "ret9" not in result.stdout
        assert (
            "Environment=MEMCLI_DATABASE_URL=postgresql://u@localhost/db\n"
            in (plan["systemd"]["memcli-maintain@.service"])
        )
