"""DSN resolution order, config files and `memcli config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memcli.config import load_config
from memcli.errors import ConfigError

FILE_DSN = "postgresql://fromfile:filesecret@db.example/app"


def write_config(path: Path, dsn: str = FILE_DSN, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[database]\ndsn = "{dsn}"\n{extra}', encoding="utf-8")
    return path


def test_embedded_is_the_default_when_nothing_is_configured(isolated_env: Path) -> None:
    config = load_config()
    assert config.uses_embedded
    assert config.dsn.source == "embedded"
    assert config.home.source == "env MEMCLI_HOME"


def test_resolution_order_first_hit_wins(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file = write_config(tmp_path / "xdg-config" / "memcli" / "memcli.toml", "postgresql://user@cfg/u")
    assert load_config().dsn.value == "postgresql://user@cfg/u"
    assert str(user_file) in load_config().dsn.source

    write_config(isolated_env / "memcli.toml", "postgresql://cwd@cfg/c")
    assert load_config().dsn.value == "postgresql://cwd@cfg/c"

    explicit = write_config(tmp_path / "other.toml", "postgresql://explicit@cfg/e")
    assert load_config(config_path=explicit).dsn.value == "postgresql://explicit@cfg/e"

    monkeypatch.setenv("DATABASE_URL", "postgresql://envdb@h/d")
    assert load_config(config_path=explicit).dsn.source == "env DATABASE_URL"

    monkeypatch.setenv("MEMCLI_DATABASE_URL", "postgresql://memcli@h/d")
    assert load_config(config_path=explicit).dsn.source == "env MEMCLI_DATABASE_URL"

    flagged = load_config(dsn="postgresql://flag@h/d", config_path=explicit)
    assert (flagged.dsn.value, flagged.dsn.source) == ("postgresql://flag@h/d", "flag --dsn")


def test_config_show_reports_sources_and_masks_the_password(cli, isolated_env: Path) -> None:
    write_config(isolated_env / "memcli.toml")
    result = cli("config", "show", "--json", "--no-database")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database"]["value"] == "postgresql://fromfile:****@db.example/app"
    assert shown["database"]["source"].startswith("config ")
    assert "filesecret" not in result.stdout + result.stderr

    table = cli("config", "show", "--no-database", env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "filesecret" not in table.stdout
    assert "fromfile:****@db.example" in table.stdout


def test_config_show_masks_key_value_dsns(cli) -> None:
    result = cli(
        "--dsn",
        "host=db.example user=app password=s3cr3t dbname=app",
        "config",
        "show",
        "--json",
        "--no-database",
    )
    assert result.exit_code == 0
    assert "s3cr3t" not in result.stdout
    assert json.loads(result.stdout)["database"]["source"] == "flag --dsn"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[database\ndsn = 'x'", "not valid TOML"),
        ("database = 'not a table'", "must be a table"),
    ],
)
def test_malformed_config_file_is_a_usage_error(cli, isolated_env: Path, content: str, expected: str) -> None:
    (isolated_env / "memcli.toml").write_text(content, encoding="utf-8")
    result = cli("db", "ping")
    assert result.exit_code == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unreadable_config_file_is_a_usage_error(cli, isolated_env: Path, tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = cli("--config", str(binary), "db", "ping")
    assert result.exit_code == 2
    assert "cannot read config file" in result.stderr

    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    assert cli("--config", str(folder), "db", "ping").exit_code == 2

    missing = cli("--config", str(tmp_path / "missing.toml"), "db", "ping")
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr


def test_load_config_raises_config_error_for_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("= nope", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(config_path=bad)
