"""Where memcli's settings come from.

The database, first hit wins: ``--dsn``, ``MEMCLI_DATABASE_URL``, ``DATABASE_URL``, a config file
(``--config FILE``, else ``memcli.toml`` in the working directory, else ``memcli.toml`` in the user config
folder), else the embedded server kept in the user data folder (``MEMCLI_HOME`` overrides).

Every resolved value remembers where it came from, so ``memcli config show`` can say so.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcli.errors import ConfigError

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


@dataclass
class Config:
    dsn: Sourced  # value None means: use the embedded server
    home: Sourced
    config_file: Path | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_embedded(self) -> bool:
        return self.dsn.value is None

    def section(self, name: str) -> dict[str, Any]:
        """A table of the config file (``[embedding]``, ``[health.thresholds]`` ...), empty if absent."""
        node: Any = self.data
        for part in name.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}

    def get(self, section: str, key: str, default: Any = None, env: str | None = None) -> Sourced:
        """A setting from the environment variable ``env`` if set, else the config file, else ``default``."""
        if env and os.environ.get(env):
            return Sourced(os.environ[env], f"env {env}")
        values = self.section(section)
        if key in values:
            return Sourced(values[key], f"config {self.config_file}")
        return Sourced(default, "default")


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
) -> Config:
    """Resolve the settings; raises ConfigError for an unreadable or malformed config file."""
    env = os.environ if env is None else env
    path = find_config_file(config_path, cwd)
    data = read_config_file(path) if path is not None else {}
    database = data.get("database", {})
    if not isinstance(database, dict):
        raise ConfigError(
            f"config file {path}: [database] must be a table", hint="write [database] dsn = '...'"
        )

    if dsn:
        resolved = Sourced(dsn, "flag --dsn")
    elif env.get("MEMCLI_DATABASE_URL"):
        resolved = Sourced(env["MEMCLI_DATABASE_URL"], "env MEMCLI_DATABASE_URL")
    elif env.get("DATABASE_URL"):
        resolved = Sourced(env["DATABASE_URL"], "env DATABASE_URL")
    elif database.get("dsn"):
        if not isinstance(database["dsn"], str):
            raise ConfigError(f"config file {path}: database.dsn must be a string")
        resolved = Sourced(database["dsn"], f"config {path}")
    else:
        resolved = Sourced(None, EMBEDDED)

    if env.get("MEMCLI_HOME"):
        home = Sourced(Path(env["MEMCLI_HOME"]).expanduser(), "env MEMCLI_HOME")
    elif isinstance(data.get("embedded"), dict) and data["embedded"].get("home"):
        home = Sourced(Path(str(data["embedded"]["home"])).expanduser(), f"config {path}")
    else:
        home = Sourced(user_data_dir(), "default (user data folder)")

    return Config(dsn=resolved, home=home, config_file=path, data=data)
