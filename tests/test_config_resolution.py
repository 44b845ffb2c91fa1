"""Configuration is resolved once (flag > environment > config file > default) and everyone reads that.

Every setting with several sources is tried from each of them; migrate, the Alembic environment and the
embedders are shown to use the same resolved dimension; a bad value is a usage error; ``config show`` lists
every setting with its source, readable at 80 columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from memcli.cli.state import State
from memcli.config import SETTINGS, load_config
from memcli.embeddings import embedding_config, get_embedder
from memcli.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

# Four distinct valid values per setting, in the form each source gives them (the file may hold TOML
# numbers; the environment and flags give text). Each setting of memcli.config.SETTINGS must be here.
SAMPLES: dict[str, tuple[Any, Any, Any, Any]] = {
    "database.dsn": (
        "postgresql://f@h/flag",
        "postgresql://e1@h/e",
        "postgresql://e2@h/e",
        "postgresql://c@h/c",
    ),
    "embedded.home": ("/tmp/flag-home", "/tmp/env-home", "/tmp/env2-home", "/tmp/file-home"),
    "embedding.provider": ("hashing", "openai", "local:x", "local"),
    "embedding.model": ("m-flag", "m-env", "m-env2", "m-file"),
    "embedding.dimension": ("16", "768", "512", 1536),
    "embedding.vector_type": ("halfvec", "vector", "HalfVec", "halfvec"),  # two types: the sources differ
    "embedding.base_url": ("http://flag/v1", "http://env/v1", "http://env2/v1", "http://file/v1"),
    "embedding.api_key_env": ("KEY_FLAG", "KEY_ENV", "KEY_ENV2", "KEY_FILE"),
    "embedding.batch_size": ("8", "16", "24", 32),
    "embedding.timeout": ("1.5", "2", "3", 4.5),
    "embedding.max_retries": ("1", "2", "3", 4),
    "embedding.device": ("cuda:1", "cuda:2", "cuda:3", "cpu"),
    "migrate.lock_timeout": ("1", "2", "3", 4),
    "migrate.lock_wait": ("5", "6", "7", 8),
}


def toml_value(value: Any) -> str:
    return json.dumps(value)  # a JSON string or number is TOML too


def expected(key: str, raw: Any) -> Any:
    setting = next(s for s in SETTINGS if s.key == key)
    return setting.parse(raw)


def test_every_setting_has_samples() -> None:
    assert set(SAMPLES) == {setting.key for setting in SETTINGS}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_each_source_of_each_setting_wins_over_the_ones_below_it(setting: Any, tmp_path: Path) -> None:
    flag_value, env_value, env2_value, file_value = SAMPLES[setting.key]
    config_file = tmp_path / "prod.toml"
    config_file.write_text(
        f"[{setting.section}]\n{setting.name} = {toml_value(file_value)}\n", encoding="utf-8"
    )
    envs = dict(zip(setting.env, (env_value, env2_value), strict=False))
    flag = {setting.key: flag_value} if setting.flag else {}

    def resolve(env: dict[str, str], flags: dict[str, Any], path: Path | None) -> Any:
        dsn = flags.pop("database.dsn", None)
        return load_config(dsn=dsn, config_path=path, env=env, cwd=tmp_path, flags=flags).values[setting.key]

    default = resolve({}, {}, None)
    assert default.source.startswith("default") or default.source == "embedded"
    from_file = resolve({}, {}, config_file)
    assert (from_file.value, from_file.source) == (expected(setting.key, file_value), f"config {config_file}")
    for i, var in enumerate(setting.env):
        # this variable beats the file and every variable after it
        env = {v: str(envs[v]) for v in setting.env[i:]}
        got = resolve(env, {}, config_file)
        assert (got.value, got.source) == (expected(setting.key, envs[var]), f"env {var}")
    if setting.flag:
        got = resolve({v: str(envs[v]) for v in setting.env}, dict(flag), config_file)
        assert (got.value, got.source) == (expected(setting.key, flag_value), f"flag {setting.flag}")


@pytest.mark.parametrize(
    ("where", "value"),
    [("file", '"abc"'), ("file", "1536.0"), ("file", "0"), ("file", "4096"), ("env", "abc"), ("env", "-1")],
)
def test_a_bad_dimension_is_a_usage_error_wherever_it_comes_from(
    cli: Any, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, where: str, value: str
) -> None:
    if where == "file":
        (isolated_env / "memcli.toml").write_text(f"[embedding]\ndimension = {value}\n", encoding="utf-8")
    else:
        monkeypatch.setenv("MEMCLI_EMBEDDING_DIM", value)
    for args in (("migrate", "--sql"), ("config", "show"), ("search", "x", "--exact")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("Error: embedding.dimension") and len(result.stderr.splitlines()) == 1


def test_an_empty_dsn_flag_is_a_usage_error(cli: Any) -> None:
    result = cli("--dsn", "", "db", "ping")
    assert result.exit_code == 2
    assert "--dsn is empty" in result.stderr and len(result.stderr.splitlines()) == 1


def column_of(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'semantic_memory'::regclass AND attname = 'embedding_vector'"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_migrate_reads_the_dimension_of_the_file_named_by_config(
    cli: Any, empty_db: str, tmp_path: Path
) -> None:
    prod = tmp_path / "elsewhere" / "prod.toml"
    prod.parent.mkdir()
    prod.write_text(
        f"[database]\ndsn = {json.dumps(empty_db)}\n[embedding]\ndimension = 1536\n", encoding="utf-8"
    )
    result = cli("--config", str(prod), "migrate", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["embedding_dimension"] == 1536
    assert column_of(empty_db) == "vector(1536)"


def test_environment_beats_the_file_for_migrate_and_the_embedder_alike(
    cli: Any, empty_db: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / "memcli.toml").write_text("[embedding]\ndimension = 1536\n", encoding="utf-8")
    monkeypatch.setenv("MEMCLI_EMBEDDING_DIM", "768")
    assert cli("migrate", dsn=empty_db).exit_code == 0
    assert column_of(empty_db) == "vector(768)"
    assert get_embedder(State().config()).dimension == 768
    stored = cli("remember", "the hashing embedder writes 768 dimensions", "--session", "s1", dsn=empty_db)
    assert stored.exit_code == 0, stored.stderr


def test_a_configured_dimension_that_differs_from_the_database_is_refused_naming_its_source(
    cli: Any, migrated_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMCLI_EMBEDDING_DIM", "1536")
    result = cli("migrate", dsn=migrated_db)
    assert result.exit_code == 2
    assert "384, not 1536 (env MEMCLI_EMBEDDING_DIM)" in result.stderr
    monkeypatch.delenv("MEMCLI_EMBEDDING_DIM")
    assert cli("migrate", dsn=migrated_db).exit_code == 0  # the default never conflicts


def test_plain_alembic_resolves_the_configuration_as_memcli_does(empty_db: str, isolated_env: Path) -> None:
    (isolated_env / "memcli.toml").write_text("[embedding]\ndimension = 1536\n", encoding="utf-8")
    env = {**os.environ, "MEMCLI_EMBEDDING_DIM": "640"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(REPO / "alembic.ini"),
            "-x",
            f"dsn={empty_db}",
            "upgrade",
            "head",
        ],
        cwd=isolated_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert column_of(empty_db) == "vector(640)"


def test_the_embedder_flag_env_and_file_resolve_provider_and_model(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / "memcli.toml").write_text(
        '[embedding]\nprovider = "openai"\nmodel = "nomic-embed-text"\nbase_url = "http://file/v1"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("MEMCLI_EMBEDDER")
    options = embedding_config(load_config())
    assert (options.provider, options.model, options.base_url) == (
        "openai",
        "nomic-embed-text",
        "http://file/v1",
    )
    monkeypatch.setenv("MEMCLI_EMBEDDER", "hashing")
    assert embedding_config(load_config()).provider == "hashing"
    # a provider chosen on the command line starts from its own default model, not the file's
    flagged = embedding_config(load_config(), "local")
    assert (flagged.provider, flagged.model) == ("local", None)
    assert embedding_config(load_config(), "openai:text-embedding-3-large").model == "text-embedding-3-large"


# --- config show ---------------------------------------------------------------------------------------


def test_config_show_lists_every_setting_with_its_source(
    cli: Any, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_env / "memcli.toml").write_text(
        '[embedding]\nprovider = "openai"\nbatch_size = 16\n', encoding="utf-8"
    )
    monkeypatch.delenv("MEMCLI_EMBEDDER")
    monkeypatch.setenv("MEMCLI_EMBEDDING_DIM", "1536")
    result = cli("config", "show", "--json", "--no-database")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    keys = {
        "database" if s.key == "database.dsn" else "home" if s.key == "embedded.home" else s.key
        for s in SETTINGS
    }
    assert keys <= set(doc)
    assert doc["embedding.provider"] == {
        "value": "openai",
        "source": f"config {isolated_env / 'memcli.toml'}",
    }
    assert doc["embedding.model"] == {
        "value": "text-embedding-3-small",
        "source": "default (provider openai)",
    }
    assert doc["embedding.dimension"] == {"value": 1536, "source": "env MEMCLI_EMBEDDING_DIM"}
    assert doc["embedding.batch_size"]["value"] == 16
    assert doc["database"] == {"value": "embedded server", "source": "embedded"}
    assert doc["migrate.lock_timeout"] == {"value": 10.0, "source": "default"}


def test_config_show_reads_the_database_settings_and_fits_80_columns(
    cli: Any, migrated_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(migrated_db) as conn:
        conn.execute("UPDATE memory_settings SET value = '14' WHERE key = 'retention.short_term_days'")
    doc = json.loads(cli("config", "show", "--json", dsn=migrated_db).stdout)
    assert doc["memory_settings.retention.short_term_days"] == {"value": 14, "source": "database"}
    assert doc["memory_settings.embedding.dimension"] == {"value": 384, "source": "database"}

    monkeypatch.setenv("COLUMNS", "80")
    table = cli("config", "show", dsn=migrated_db)
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in ("embedding.provider", "embedding.model", "embedding.dimension", "retention.short_term_days"):
        assert any(line.strip().startswith(name) for line in lines), name
    assert any("flag --dsn" in line for line in lines)


def test_config_show_without_a_reachable_database_still_shows_the_rest(cli: Any) -> None:
    result = cli("config", "show", "--json", dsn="postgresql://u:pw@127.0.0.1:9/db")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["memory_settings"]["source"].startswith("not read: cannot reach")
    assert doc["embedding.dimension"]["value"] == 384


def test_load_config_rejects_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('embedding = "openai"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[embedding\] must be a table"):
        load_config(config_path=bad)
