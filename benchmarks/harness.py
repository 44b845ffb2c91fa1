"""What every benchmark script needs: a throw-away embedded Postgres, databases on it, percentiles.

The scripts run as ``python benchmarks/<name>.py``, from any working directory: Python puts the script's
folder first on ``sys.path``, so ``from harness import ...`` finds this module.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EMBEDDING_DIM = 384


def dsn_for(server_dsn: str, dbname: str) -> str:
    """The server's DSN pointed at another database."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(server_dsn, dbname=dbname)


def create_database(
    admin_dsn: str, name: str, template: str | None = None, strategy: str | None = None
) -> str:
    """CREATE DATABASE ``name`` (a copy of ``template`` if given) and return its DSN.

    ``strategy`` is Postgres' copy strategy for a template (``FILE_COPY`` or ``WAL_LOG``); None leaves the
    server's default.
    """
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            if strategy:
                query += sql.SQL(" STRATEGY {}").format(sql.SQL(strategy))
        conn.execute(query)
    return dsn_for(admin_dsn, name)


def migrate(dsn: str, embedding_dim: int = EMBEDDING_DIM) -> None:
    """Bring the database to memcli's latest schema, as ``memcli migrate`` does."""
    from memcli import migrations

    migrations.upgrade(dsn, embedding_dim=embedding_dim)


@dataclass(frozen=True)
class Server:
    home: Path
    dsn: str  # the server's own database

    @property
    def admin_dsn(self) -> str:
        return dsn_for(self.dsn, "postgres")

    def dsn_for(self, dbname: str) -> str:
        return dsn_for(self.dsn, dbname)

    def create_database(self, name: str, template: str | None = None, strategy: str | None = None) -> str:
        return create_database(self.admin_dsn, name, template=template, strategy=strategy)


@contextmanager
def embedded_server(
    prefix: str,
    *,
    keep: bool = False,
    announce: Callable[[Path], None] | None = None,
    home: Path | None = None,
) -> Iterator[Server]:
    """An embedded Postgres in a fresh temporary MEMCLI_HOME, stopped (and the folder removed unless
    ``keep``) on the way out, whatever happens inside.

    MEMCLI_HOME is set in this process too, so anything that falls back to the embedded server, and every
    subprocess started with ``os.environ``, finds this one rather than the user's.
    A given ``home`` is used (created if missing) and always kept: a later run reuses what it holds.
    """
    from memcli import embedded

    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        keep = True
    else:
        home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MEMCLI_HOME"] = str(home)
    try:
        if announce is not None:
            announce(home)
        state = embedded.start(home)
        assert state.dsn is not None
        yield Server(home, state.dsn)
    finally:
        try:
            embedded.stop(home)
        finally:
            if not keep:
                shutil.rmtree(home, ignore_errors=True)


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The sample at rank ``q`` (0..1) of the sorted values, no interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` (0..100) percentile, linearly interpolated between samples (numpy's default)."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), pct))
