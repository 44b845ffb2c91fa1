"""Ready-to-paste schedules for the three maintenance jobs: crontab lines and systemd units.

The lines name this memcli by absolute path (cron's PATH is minimal) and carry the current configuration the
way cron can see it: ``--config /absolute/memcli.toml``, or the database URL as an environment line with the
password removed (``~/.pgpass`` supplies it), or ``MEMCLI_HOME`` for the embedded server. No ``flock`` is
needed: every job takes a Postgres advisory lock, and an overlapping run exits 75 and leaves the first alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memcli.dsn import parse_conninfo, without_password

if TYPE_CHECKING:
    from memcli.config import Config

# (cron fields, systemd OnCalendar): spread over the night so the jobs rarely meet
TIMES = {
    "daily": ("15 3 * * *", "*-*-* 03:15:00"),
    "weekly": ("15 4 * * 0", "Sun *-*-* 04:15:00"),
    "monthly": ("15 5 1 * *", "*-*-01 05:15:00"),
}
ENV_DSN_VARS = ("MEMCLI_DATABASE_URL", "DATABASE_URL")


@dataclass
class Schedule:
    executable: list[str]
    log_dir: str
    environment: dict[str, str] = field(default_factory=dict)
    global_args: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    crontab: list[str] = field(default_factory=list)
    systemd: dict[str, str] = field(default_factory=dict)  # unit file name -> contents


def memcli_executable(argv0: str | None = None) -> list[str]:
    """The absolute command that runs this memcli (``[python, -m, memcli]`` when there is no script)."""
    argv0 = argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")
    if Path(argv0).name.startswith("memcli") and not argv0.endswith(".py"):
        found = argv0 if os.sep in argv0 else shutil.which(argv0)
        if found and os.access(found, os.X_OK):
            # absolute() rather than resolve(): keep a pipx/venv shim's stable path, not its target
            return [str(Path(found).absolute())]
    found = shutil.which("memcli")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "memcli"]


def pgpass_line(dsn: str) -> str:
    """The ``~/.pgpass`` line for a DSN, with ``PASSWORD`` where the password goes (never the password)."""

    def field(value: str | None) -> str:
        return (value or "*").replace("\\", "\\\\").replace(":", "\\:")

    params = parse_conninfo(dsn)
    host = params.get("host", "").split(",")[0] or "localhost"
    port = params.get("port", "").split(",")[0] or "5432"
    return (
        ":".join([field(host), field(port), field(params.get("dbname")), field(params.get("user"))])
        + ":PASSWORD"
    )


def _cron_escape(text: str) -> str:
    # cron turns an unescaped % in the command into a newline
    return text.replace("%", r"\%")


def build_schedule(
    config: Config,
    *,
    executable: list[str] | None = None,
    log_dir: Path | None = None,
    explicit_config: bool = False,
) -> Schedule:
    """Crontab lines and systemd units running ``memcli maintain daily|weekly|monthly``."""
    import platformdirs

    exe = executable or memcli_executable()
    logs = Path(log_dir).expanduser().absolute() if log_dir else Path(platformdirs.user_log_dir("memcli"))
    schedule = Schedule(executable=exe, log_dir=str(logs))

    source = config.dsn.source
    if config.config_file is not None and (explicit_config or source.startswith("config ")):
        schedule.global_args += ["--config", str(Path(config.config_file).expanduser().absolute())]
    if config.dsn.value is None:
        schedule.environment["MEMCLI_HOME"] = str(Path(config.home.value).expanduser().absolute())
        schedule.notes.append("the jobs use the embedded Postgres in MEMCLI_HOME; memcli starts it on demand")
    elif not source.startswith("config "):
        # from --dsn or the environment: cron sees neither, so the URL goes into the crontab's environment
        dsn, had_password = without_password(str(config.dsn.value))
        schedule.environment["MEMCLI_DATABASE_URL"] = dsn
        if had_password:
            schedule.notes.append(
                "the password is left out on purpose: add the line "
                f"{pgpass_line(str(config.dsn.value))} to ~/.pgpass (chmod 600) of the user running the jobs "
                "(or set PGPASSFILE, or use a pg_service.conf entry with service=NAME)"
            )
    schedule.notes.append(
        "maintenance needs a direct connection to Postgres (or a session-mode pool): advisory locks do not "
        "work through PgBouncer/Supavisor in transaction mode"
    )
    schedule.notes.append(
        "exit 75: the previous run still held the lock (this run did nothing); exit 1: a step failed"
    )

    base = " ".join(shlex.quote(part) for part in [*exe, *schedule.global_args])
    schedule.crontab.append(
        f"# memcli maintenance (create the log folder first: mkdir -p {shlex.quote(str(logs))})"
    )
    for name, value in schedule.environment.items():
        schedule.crontab.append(f"{name}={value}")
    for job, (cron, _) in TIMES.items():
        log = shlex.quote(str(logs / f"{job}.log"))
        command = f"{base} -q maintain {job} --json >> {log} 2>&1"
        schedule.crontab.append(f"{cron} {_cron_escape(command)}")

    def unit_escape(text: str) -> str:
        return text.replace("%", "%%")  # systemd expands %-specifiers in unit files

    env_lines = "".join(
        f"Environment={unit_escape(shlex.quote(f'{k}={v}'))}\n" for k, v in schedule.environment.items()
    )
    schedule.systemd["memcli-maintain@.service"] = (
        "[Unit]\n"
        "Description=memcli %i maintenance\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{env_lines}"
        f"ExecStart={unit_escape(base)} -q maintain %i --json\n"
        "# 75: another run still held the job's lock; this one did nothing and is not a failure\n"
        "SuccessExitStatus=75\n"
        "Nice=10\n"
        "IOSchedulingClass=idle\n"
    )
    for job, (_, calendar) in TIMES.items():
        schedule.systemd[f"memcli-{job}.timer"] = (
            "[Unit]\n"
            f"Description=memcli {job} maintenance\n"
            "\n"
            "[Timer]\n"
            f"OnCalendar={calendar}\n"
            "Persistent=true\n"
            "RandomizedDelaySec=10min\n"
            f"Unit=memcli-maintain@{job}.service\n"
            "\n"
            "[Install]\n"
            "WantedBy=timers.target\n"
        )
    return schedule
