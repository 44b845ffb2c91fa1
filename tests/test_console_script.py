"""The installed `memcli` console script, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "numpy", "torch")


def memcli_executable() -> str:
    candidate = Path(sys.executable).parent / "memcli"
    if not candidate.exists():
        pytest.skip("the memcli console script is not installed next to this Python")
    return str(candidate)


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [memcli_executable(), *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("memcli ")
    help_ = run("--help")
    assert help_.returncode == 0
    for word in ("migrate", "health", "Exit codes", "75"):
        assert word in help_.stdout


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['memcli', '--help']\n"
        "from memcli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memcli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert out.stdout.startswith("memcli ")


def test_bad_dsn_in_a_subprocess_exits_2_with_one_line() -> None:
    result = run("--dsn", "postgresql://u:topsecret@[bad", "db", "ping")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "topsecret" not in result.stderr + result.stdout


def test_embedded_server_start_status_stop_with_no_configuration(tmp_path: Path) -> None:
    env = {"MEMCLI_HOME": str(tmp_path / "home"), "MEMCLI_DATABASE_URL": "", "DATABASE_URL": ""}
    assert run("db", "status", env=env).returncode == 3  # not started yet
    started = run("db", "start", env=env)
    assert started.returncode == 0, started.stderr
    try:
        status = run("db", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert "running" in status.stdout
        url = run("db", "url", env=env).stdout.strip()
        assert url.startswith("postgresql://postgres@/memcli?host=")
        assert json.loads(run("db", "url", "--json", env=env).stdout) == {"dsn": url, "source": "embedded"}
        ping = run("db", "ping", env=env)  # no DSN anywhere: the embedded server answers
        assert ping.returncode == 0, ping.stderr
        assert "pgvector" in ping.stdout
    finally:
        assert run("db", "stop", env=env).returncode == 0
    assert run("db", "status", env=env).returncode == 3
