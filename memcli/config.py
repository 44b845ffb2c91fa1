"""Where memcli's settings come from.

The database, first hit wins: ``--dsn``, ``MEMCLI_DATABASE_URL``, ``DATABASE_URL``, a config file
(``--config FILE``, else ``memcli.toml`` in the working directory, else ``memcli.toml`` in the user config
folder), else the embedded server kept in the user data folder (``MEMCLI_HOME`` overrides).

Every other setting likewise: the command-line flag, then the environment, then the config file, then the
default (:data:`SETTINGS` lists each with its sources). :func:`load_config` resolves them all once and
refuses a bad value with exit 2; migrations, the Alembic environment, embedders, health and the jobs read the
resulting :class:`Config`. Every resolved value remembers where it came from, so ``memcli config show`` can
say so.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcli.errors import ConfigError
from memcli.schema import names

CONFIG_FILENAME = "memcli.toml"
EMBEDDED = "embedded"


def user_config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("memcli"))


def user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("memcli"))


@dataclass(frozen=True)
class Sourced:
    """A resolved value and where it came from (a flag, a variable, a file, a default)."""

    value: Any
    source: str


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _path(value: Any) -> Path:
    return Path(_text(value)).expanduser()


def _dimension(value: Any) -> int:
    number = _whole(value)
    if not 1 <= number <= names.MAX_EMBEDDING_DIMENSION:
        raise ValueError(f"must be from 1 to {names.MAX_EMBEDDING_DIMENSION} (pgvector's HNSW limit)")
    return number


def _vector_type(value: Any) -> str:
    text = _text(value).strip().lower()
    if text not in names.VECTOR_TYPES:
        raise ValueError(f"must be one of {', '.join(names.VECTOR_TYPES)}")
    return text


def _whole(value: Any) -> int:
    # TOML gives int; the environment and flags give text. 1536.0 or "abc" is a mistake, not a number.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number")
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError("must be a whole number")
    number = int(text)
    if number <= 0:
        raise ValueError("must be positive")
    return number


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds") from None
    if not 0 <= number < 86400 * 365 or number != number:
        raise ValueError("must be a number of seconds from 0 up to a year")
    return number


@dataclass(frozen=True)
class Setting:
    """One setting: its key (``section.name``, as written in memcli.toml) and where it may come from.

    The order is always: the command-line flag, then each environment variable in turn, then the config
    file, then the default. ``parse`` checks a value (raising ValueError with the reason) and converts it.
    """

    key: str
    help: str
    default: Any = None
    flag: str | None = None
    env: tuple[str, ...] = ()
    parse: Callable[[Any], Any] = _text
    secret: bool = False  # shown masked

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.key.rpartition(".")[2]


# Every setting memcli reads from flags, the environment or memcli.toml: the one list of them.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database.dsn",
        "the database; none means the embedded server",
        flag="--dsn",
        env=("MEMCLI_DATABASE_URL", "DATABASE_URL"),
        secret=True,
    ),
    Setting("embedded.home", "data folder of the embedded server", env=("MEMCLI_HOME",), parse=_path),
    Setting(
        "embedding.provider",
        "local | openai | hashing, optionally provider:model",
        default="local",
        flag="--embedder",
        env=("MEMCLI_EMBEDDER",),
    ),
    Setting("embedding.model", "the provider's model (default: the provider's own)"),
    Setting(
        "embedding.dimension",
        "vector dimension, chosen at the first migration",
        default=names.DEFAULT_EMBEDDING_DIMENSION,
        flag="--embedding-dim",
        env=("MEMCLI_EMBEDDING_DIM",),
        parse=_dimension,
    ),
    Setting(
        "embedding.vector_type",
        "vector | halfvec: the vectors' type, chosen at the first migration (memcli vectors convert)",
        default=names.DEFAULT_VECTOR_TYPE,
        flag="--vector-type",
        env=("MEMCLI_VECTOR_TYPE",),
        parse=_vector_type,
    ),
    Setting(
        "embedding.base_url",
        "endpoint of the openai provider",
        env=("MEMCLI_EMBEDDING_BASE_URL",),
    ),
    Setting("embedding.api_key_env", "variable holding the openai provider's API key", "OPENAI_API_KEY"),
    Setting("embedding.batch_size", "texts per embedding request", 64, parse=_whole),
    Setting("embedding.timeout", "seconds per embedding request", 30.0, parse=_seconds),
    Setting("embedding.max_retries", "retries of a failed embedding request", 5, parse=_whole),
    Setting("embedding.device", "torch device of the local provider (cpu, cuda)"),
    Setting(
        "migrate.lock_timeout",
        "seconds a migration's DDL waits for the application's locks",
        10.0,
        flag="--lock-timeout",
        env=("MEMCLI_LOCK_TIMEOUT",),
        parse=_seconds,
    ),
    Setting(
        "migrate.lock_wait",
        "seconds to wait for another running migration",
        300.0,
        flag="--lock-wait",
        parse=_seconds,
    ),
)
SETTINGS_BY_KEY = {setting.key: setting for setting in SETTINGS}


@dataclass
class Config:
    """Every setting resolved once, each with its source; commands, migrations and embedders read this."""

    config_file: Path | None
    data: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Sourced] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def dsn(self) -> Sourced:  # value None means: use the embedded server
        return self.values["database.dsn"]

    @property
    def home(self) -> Sourced:
        return self.values["embedded.home"]

    @property
    def uses_embedded(self) -> bool:
        return self.dsn.value is None

    def value(self, key: str) -> Any:
        return self.values[key].value

    def with_flags(self, flags: Mapping[str, Any]) -> Config:
        """This configuration with command options (``{"embedding.dimension": 768}``; None: not given)."""
        given = {key: value for key, value in flags.items() if value is not None}
        if not given:
            return self
        values = dict(self.values)
        for key, value in given.items():
            values[key] = _resolve(SETTINGS_BY_KEY[key], value, self.env, self.data, self.config_file)
        return Config(config_file=self.config_file, data=self.data, values=values, env=self.env)

    def section(self, name: str) -> dict[str, Any]:
        """A table of the config file (``[embedding]``, ``[health.thresholds]`` ...), empty if absent."""
        node: Any = self.data
        for part in name.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="check the --config path") from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.__class__.__name__}",
            hint="make it a readable UTF-8 TOML file",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}",
            hint="see the README's Configuration section for the format",
        ) from None


def find_config_file(explicit: Path | None, cwd: Path | None = None) -> Path | None:
    if explicit is not None:
        return explicit
    for candidate in ((cwd or Path.cwd()) / CONFIG_FILENAME, user_config_dir() / CONFIG_FILENAME):
        if candidate.is_file():
            return candidate
    return None


def load_config(
    dsn: str | None = None,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """Resolve every setting (flag > environment > config file > default); ConfigError for a bad one."""
    env = dict(os.environ if env is None else env)
    path = find_config_file(config_path, cwd)
    data = read_config_file(path) if path is not None else {}
    for section in {setting.section for setting in SETTINGS}:
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(
                f"config file {path}: [{section}] must be a table", hint=f"write [{section}] on its own line"
            )
    if dsn is not None and not dsn.strip():
        raise ConfigError("--dsn is empty", hint="give a database URL, or leave --dsn out for the default")
    given = {"database.dsn": dsn, **(flags or {})}
    values = {setting.key: _resolve(setting, given.get(setting.key), env, data, path) for setting in SETTINGS}
    return Config(config_file=path, data=data, values=values, env=env)


def _resolve(
    setting: Setting, flag: Any, env: Mapping[str, str], data: dict[str, Any], path: Path | None
) -> Sourced:
    if flag is not None:
        found = Sourced(flag, f"flag {setting.flag}")
    else:
        found = next((Sourced(env[var], f"env {var}") for var in setting.env if env.get(var)), None)
        section = data.get(setting.section, {})
        if found is None and isinstance(section, dict) and section.get(setting.name) not in (None, ""):
            found = Sourced(section[setting.name], f"config {path}")
    if found is None:
        return _default(setting)
    return Sourced(checked(setting.key, found.value, found.source), found.source)


def checked(key: str, value: Any, source: str) -> Any:
    """``value`` of setting ``key`` parsed and checked; ConfigError (exit 2) naming the source if bad."""
    setting = SETTINGS_BY_KEY[key]
    try:
        return setting.parse(value)
    except ValueError as exc:
        shown = "" if setting.secret else f" {value!r}"
        raise ConfigError(f"{key}{shown} ({source}) {exc}", hint=f"{key}: {setting.help}") from None


def _default(setting: Setting) -> Sourced:
    if setting.key == "database.dsn":
        return Sourced(None, EMBEDDED)
    if setting.key == "embedded.home":
        return Sourced(user_data_dir(), "default (user data folder)")
    return Sourced(setting.default, "default")


@dataclass(frozen=True)
class ShownSetting:
    """One line of ``memcli config show``: safe to print (secrets masked)."""

    name: str
    value: Any
    source: str


def describe(config: Config, config_path_given: bool = False) -> list[ShownSetting]:
    """Every setting of ``config`` with its source, secrets masked; the embedding model as the provider
    will use it (its own default when none is set)."""
    from memcli.dsn import mask_dsn

    shown = [
        ShownSetting(
            "config_file",
            str(config.config_file) if config.config_file else None,
            "flag --config" if config_path_given else ("search" if config.config_file else "none found"),
        )
    ]
    for setting in SETTINGS:
        value, source = config.values[setting.key].value, config.values[setting.key].source
        if setting.key == "database.dsn":
            value = mask_dsn(value) if value is not None else "embedded server"
        elif setting.key == "embedding.model" and value is None:
            value, source = _default_model(config), f"default (provider {_provider(config)})"
        elif setting.key == "embedding.api_key_env":
            value = f"{value} ({'set' if config.env.get(value) else 'not set'})"
        shown.append(ShownSetting(setting.key, str(value) if isinstance(value, Path) else value, source))
    return shown


def _provider(config: Config) -> str:
    from memcli.embeddings import embedding_config

    return embedding_config(config).provider


def _default_model(config: Config) -> str | None:
    from memcli.embeddings import default_model

    return default_model(_provider(config))
