"""What the global options resolve to, shared by every command through Typer's context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import psycopg
    from rich.console import Console

    from memcli.config import Config


@dataclass
class State:
    dsn: str | None = None
    config_path: Path | None = None
    json: bool = False
    verbose: int = 0
    quiet: bool = False
    _config: Config | None = field(default=None, repr=False)
    _console: Console | None = field(default=None, repr=False)

    def config(self, flags: Mapping[str, Any] | None = None) -> Config:
        """The configuration, resolved once; ``flags`` adds a command's options (None: not given)."""
        if self._config is None:
            from memcli.config import load_config

            self._config = load_config(dsn=self.dsn, config_path=self.config_path)
        return self._config.with_flags(flags) if flags else self._config

    def resolve_dsn(self) -> str:
        from memcli.db import resolve_dsn

        return resolve_dsn(self.config())

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        from memcli.db import connect

        return connect(self.resolve_dsn(), **kwargs)

    @property
    def console(self) -> Console:
        if self._console is None:
            from memcli.cli.render import make_console

            self._console = make_console()
        return self._console


def get_state(ctx: typer.Context, json_flag: bool = False) -> State:
    """The root State; a command's own ``--json`` switches JSON output on as the global one does."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    state: State = root.obj
    if json_flag:
        state.json = True
    return state
