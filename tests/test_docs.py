"""Docs that run: the README's configuration is accepted, every command and option it names exists, every
command's --help ends with examples that parse, and the exit-code table is the code's.

Generic on purpose: a command added later is walked from the Typer app like the others.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from memcli.cli.app import app
from memcli.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SEPARATORS = {"&&", "||", "|", ";", "(", ")", "&"}
REDIRECTS = {">", ">>", "<", ">&", "&>"}


# ------------------------------------------------------------------------------------- the command tree


def root_command() -> Any:
    return typer.main.get_command(app)


def is_group(command: Any) -> bool:
    # Typer ships its own click: duck-type instead of isinstance(click.Group)
    return hasattr(command, "list_commands")


def is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def walk(command: Any, path: tuple[str, ...] = ("memcli",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    if is_group(command):
        ctx = typer.Context(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, (*path, name))


COMMANDS = dict(walk(root_command()))
ALL_OPTIONS = {"-h", "--help"} | {
    opt for cmd in COMMANDS.values() for p in cmd.params for opt in (*p.opts, *p.secondary_opts)
}


def check_invocation(args: list[str]) -> list[str]:
    """What is wrong with ``memcli ARGS`` as click would parse it: unknown commands and options."""
    problems: list[str] = []
    path, command = ("memcli",), COMMANDS[("memcli",)]
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-") and token != "-" and not re.fullmatch(r"-\d[\d.]*", token):
            name = token.split("=", 1)[0]
            param = next(
                (p for p in command.params if is_option(p) and name in (*p.opts, *p.secondary_opts)),
                None,
            )
            if param is None and name not in ("-h", "--help"):
                problems.append(f"`{' '.join(path)}` has no option {name}")
            elif param is not None and not (param.is_flag or param.count) and "=" not in token:
                i += 1  # the option's value
        elif is_group(command):
            if re.fullmatch(r"[A-Z][A-Z_]*", token):  # a placeholder (memcli import LAYOUT): any command
                break
            if (*path, token) not in COMMANDS:
                problems.append(f"`{' '.join(path)}` has no command {token!r}")
                break
            path, command = (*path, token), COMMANDS[(*path, token)]
        i += 1
    return problems


def invocations(shell: str) -> Iterator[list[str]]:
    """The argument lists of every ``memcli`` run in a line of shell (also inside ``$(...)``); what follows a
    redirection (``> file``, ``2>&1``) is not an argument."""
    text = re.sub(r'"?\$\(([^()]*)\)"?', r" ; \1 ; ", shell)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: not shell
        return
    segment: list[str] = []
    redirected = False
    for token in [*tokens, ";"]:
        if token in SEPARATORS:
            words = [t for t in segment if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", t)]  # VAR=value prefixes
            if words and Path(words[0]).name == "memcli":
                yield words[1:]
            segment, redirected = [], False
        elif token in REDIRECTS or re.fullmatch(r"\d?[<>]+&?", token):
            redirected = True
        elif not redirected:
            segment.append(token)


# --------------------------------------------------------------------------------------------- README


def readme_code() -> tuple[list[tuple[str, str]], list[str]]:
    """Fenced blocks (language, body) and inline code spans (outside the blocks)."""
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(README)]
    prose = FENCE.sub("", README)
    return blocks, re.findall(r"`([^`\n]+)`", prose)


def expand_alternatives(span: str) -> list[str]:
    """``memcli db start \\| stop`` (a table cell) names ``memcli db start`` and ``memcli db stop``."""
    first, *others = [part.strip() for part in span.split("\\|")]
    head = first.rsplit(" ", 1)[0]
    return [first, *(f"{head} {other}" for other in others)]


def readme_invocations() -> list[tuple[str, list[str]]]:
    blocks, spans = readme_code()
    found: list[tuple[str, list[str]]] = []
    for language, body in blocks:
        if language in ("sh", "bash", "shell", "console", ""):
            for line in body.splitlines():
                found += [(line, args) for args in invocations(line)]
    for span in spans:
        for text in expand_alternatives(span.replace("[", "").replace("]", "")):  # [--optional N]
            found += [(text, args) for args in invocations(text)]
    return found


def test_readme_names_only_commands_and_options_that_exist() -> None:
    found = readme_invocations()
    assert len(found) > 20, "the README's commands were not found: is the parser still right?"
    problems = [f"{text}: {p}" for text, args in found for p in check_invocation(args)]
    assert not problems, "\n".join(problems)
    named = {path[1] for _, args in found for path in [("memcli", *args[:1])] if args}
    assert {"migrate", "seed", "health", "search", "maintain", "cleanup", "consolidate", "db"} <= named


def test_readme_options_in_prose_exist() -> None:
    _, spans = readme_code()
    options = {
        token.split("=", 1)[0]
        for span in spans
        if span.startswith("-")
        for token in span.split()
        if re.fullmatch(r"--?[a-z][\w-]*(=.*)?", token)
    }
    assert {"--json", "--dry-run"} <= options
    missing = sorted(options - ALL_OPTIONS)
    assert not missing, f"the README names options no command has: {missing}"


def test_readme_scripts_exist() -> None:
    scripts = set(re.findall(r"\b(benchmarks/\w+\.py)", README))
    assert scripts
    assert not [s for s in scripts if not (ROOT / s).is_file()]


def uncommented(toml: str) -> str:
    """The TOML with its commented-out settings (``# key = value``) switched on."""
    return re.sub(r"^#\s*([A-Za-z_][\w.-]*\s*=)", r"\1", toml, flags=re.M)


TOML_BLOCKS = [body for language, body in readme_code()[0] if language == "toml"]


@pytest.mark.parametrize("variant", ["as written", "commented settings on"])
@pytest.mark.parametrize("index", range(len(TOML_BLOCKS)))
def test_readme_toml_is_accepted(cli, tmp_path: Path, index: int, variant: str) -> None:
    body = TOML_BLOCKS[index]
    if variant != "as written":
        body = uncommented(body)
        assert body != TOML_BLOCKS[index] or "#" not in TOML_BLOCKS[index]
    tomllib.loads(body)  # parses
    path = tmp_path / "memcli.toml"
    path.write_text(body, encoding="utf-8")
    for command in (["config", "show", "--no-database"], ["health", "--list"]):  # every section, no database
        result = cli("--config", str(path), *command)
        assert result.exit_code == 0, (
            f"memcli {' '.join(command)} refused README block {index}: {result.stderr}"
        )


def test_readme_thresholds_example_names_real_keys() -> None:
    from memcli.health import THRESHOLDS

    for body in TOML_BLOCKS:
        section = tomllib.loads(uncommented(body)).get("health", {}).get("thresholds", {})
        assert set(section) <= set(THRESHOLDS), set(section) - set(THRESHOLDS)


def test_readme_exit_code_table_is_the_enum() -> None:
    section = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = {int(code) for code in re.findall(r"^\|\s*(\d+)\s*\|", section, re.M)}
    assert codes == {int(code) for code in ExitCode}


# ------------------------------------------------------------------------------------------------ --help


def help_text(path: tuple[str, ...], cli) -> str:
    result = cli(*path[1:], "--help")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def examples_at_end(text: str) -> list[str] | None:
    """The example commands a --help ends with: after its last "Examples:", either one indented command a
    line (``memcli.cli.helptext.epilog``) or one paragraph of commands separated by " · "."""
    headings = list(re.finditer(r"\bExamples?:", text))
    if not headings:
        return None
    tail = re.sub(r"(?<=\w)-\n\s*", "-", text[headings[-1].end() :].strip("\n"))  # click wraps at hyphens
    if "·" in tail or "\n" not in tail.strip():
        return [part.strip() for part in " ".join(tail.split()).split(" · ") if part.strip()]
    lines = tail.splitlines()
    return [line.strip() for line in lines] if all(line.startswith("  ") for line in lines) else None


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p))
def test_help_ends_with_examples_that_parse(cli, path: tuple[str, ...]) -> None:
    text = help_text(path, cli)
    block = examples_at_end(text)
    assert block, (
        f"`{' '.join(path)} --help` does not end with examples: end it with them, e.g. "
        f"app.command(epilog=memcli.cli.helptext.epilog(examples=('memcli ...',))):\n{text}"
    )
    runs = [args for line in block for args in invocations(line)]
    assert runs, f"no memcli command among the examples of `{' '.join(path)}`"
    problems = [
        f"{line}: {p}" for line in block for args in invocations(line) for p in check_invocation(args)
    ]
    assert not problems, "\n".join(problems)
    if len(path) > 1:  # each command's examples show that command
        assert any(tuple(args[: len(path) - 1]) == path[1:] or path[-1] in args for args in runs), block


def test_help_exit_codes_are_the_enum_values(cli) -> None:
    known = {int(code) for code in ExitCode}
    for path in COMMANDS:
        text = " ".join(help_text(path, cli).split())
        for listing in re.findall(r"Exit codes: (.*?)\.(?:\s|$)", text):
            codes = {int(code) for code in re.findall(r"(?:^|; )(\d+) ", listing)}
            assert codes and codes <= known, (path, listing)


def test_example_parser_catches_mistakes() -> None:
    assert check_invocation(["migrate", "status", "-q"]) == ["`memcli migrate status` has no option -q"]
    assert check_invocation(["-q", "migrate", "status"]) == []
    assert check_invocation(["--dsn", "postgresql://x/y", "db", "ping"]) == []
    assert check_invocation(["db", "pong"]) == ["`memcli db` has no command 'pong'"]
    assert examples_at_end("Do it.\n\n  Examples: memcli a · memcli b\n  --c\n") == [
        "memcli a",
        "memcli b --c",
    ]
    assert examples_at_end("Examples:\n    memcli a\n    memcli b\n") == ["memcli a", "memcli b"]
    assert examples_at_end("Examples: memcli a\n\nOptions:\n  --x  X\n") is None
    assert list(invocations('psql "$(memcli db url)" && X=1 .venv/bin/memcli -q health > out 2>&1')) == [
        ["db", "url"],
        ["-q", "health"],
    ]
