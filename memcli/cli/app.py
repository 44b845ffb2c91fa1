"""The ``memcli`` root command: global options, the error boundary and the command groups.

Start-up stays light: nothing here (or in the command modules' top level) imports SQLAlchemy, Alembic,
numpy or torch; commands import the library inside their bodies.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from memcli import __version__
from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.render import err
from memcli.cli.state import State
from memcli.errors import EXIT_CODE_MEANINGS, ExitCode, MemcliError, first_line

EPILOG = epilog(
    "Database: --dsn, then MEMCLI_DATABASE_URL, DATABASE_URL, memcli.toml, else the embedded server.",
    exit_codes(EXIT_CODE_MEANINGS),
    examples=(
        "memcli migrate",
        "memcli seed --demo --yes",
        "memcli health",
        "memcli search 'vegetarian options'",
        "memcli maintain daily",
        "memcli --dsn postgresql://app@db.internal/app db ping",
    ),
)


COMMAND_ORDER = (
    "migrate",
    "seed",
    "search",
    "remember",
    "embed",
    "memories",
    "users",
    "sessions",
    "stats",
    "import",
    "reembed",
    "health",
    "tune",
    "index",
    "cleanup",
    "consolidate",
    "maintain",
    "schedule",
    "db",
    "config",
)


def _report(error: BaseException, code: int, verbose: bool, message: str, hint: str | None = None) -> None:
    if verbose:
        err("".join(traceback.format_exception(error)))
    err(f"Error: {message}" + (f" — hint: {hint}" if hint else ""))
    raise typer.Exit(code)


class MemcliGroup(TyperGroup):
    """Maps every error to one line on stderr and a documented exit code (traceback only with -v)."""

    def invoke(self, ctx: typer.Context) -> Any:
        from memcli.jobs.interrupts import stop_on_signals

        try:
            # SIGTERM (a service manager, timeout, kill) stops every command as Ctrl-C does: exit 130
            with stop_on_signals():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except MemcliError as exc:
            _report(exc, int(exc.exit_code), _verbose(ctx), exc.message, exc.hint)
        except KeyboardInterrupt as exc:
            _report(exc, ExitCode.INTERRUPTED, _verbose(ctx), "interrupted")
        except (UnicodeEncodeError, UnicodeDecodeError) as exc:
            # bytes that are not UTF-8 (in an argument, a file or stdin) cannot be stored as text
            _report(
                exc,
                ExitCode.USAGE,
                _verbose(ctx),
                "the input has bytes that are not valid UTF-8 text",
                "convert it to UTF-8 (iconv -t UTF-8) and retry",
            )
        except Exception as exc:
            _report_unexpected(exc, ctx)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        # an operator's workflow order, not alphabetical
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))


def _verbose(ctx: typer.Context) -> bool:
    state = ctx.find_root().obj
    return isinstance(state, State) and state.verbose > 0


def _report_unexpected(exc: Exception, ctx: typer.Context) -> None:
    # psycopg is already imported if a psycopg error is being handled; never import it here otherwise.
    psycopg = sys.modules.get("psycopg")
    text = first_line(exc)
    if psycopg is not None and isinstance(exc, psycopg.Error):
        from memcli.db import describe_database_error

        named = describe_database_error(exc)
        _report(exc, int(named.exit_code), _verbose(ctx), named.message, named.hint)
    _report(
        exc,
        ExitCode.PROBLEMS,
        _verbose(ctx),
        f"unexpected {exc.__class__.__name__}: {text}",
        "run with -v for the traceback",
    )


app = typer.Typer(
    cls=MemcliGroup,
    name="memcli",
    help="Operate the Postgres database that holds your AI agents' memory.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    dsn: Annotated[str | None, typer.Option("--dsn", help="Database URL (overrides env and config).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (default: ./memcli.toml, then user config).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts).")] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More output; tracebacks.")] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and results.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = State(dsn=dsn, config_path=config, json=json_, verbose=verbose, quiet=quiet)
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )


def _register() -> None:
    from memcli.cli import config as config_cmd
    from memcli.cli import db as db_cmd

    app.add_typer(db_cmd.app, name="db")
    app.add_typer(config_cmd.app, name="config")
    for module_name in (
        "migrate",
        "seed",
        "jobs",
        "health",
        "search",
        "memories",
        "users",
        "sessions",
        "stats",
        "vectors",
        "imports",
        "reembed",
        "partition",
    ):
        module = __import__(f"memcli.cli.{module_name}", fromlist=["register"])
        module.register(app)


_register()


def main() -> None:
    app(prog_name="memcli")


if __name__ == "__main__":
    main()
