"""Connection strings: validation and masking.

A DSN may be a URI (``postgresql://user:secret@host/db``) or libpq key/value pairs
(``host=... password=secret``). Its password must never reach any output or log, so every place that
shows a DSN goes through :func:`mask_dsn`, and error messages go through :func:`scrub`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

from memcli.errors import ConfigError

MASK = "****"
_URI_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)
_QUERY_PASSWORD_PARAM = re.compile(r"([?&])password=[^&]*&?", re.IGNORECASE)
_URI_USERINFO = re.compile(r"^([a-z0-9+]+://[^:/@?#]*):[^@/?#]*@", re.IGNORECASE)


def is_uri(dsn: str) -> bool:
    return dsn.strip().lower().startswith(_URI_PREFIXES)


def to_libpq(dsn: str) -> str:
    """Turn a SQLAlchemy-style URL (``postgresql+psycopg://``) into one libpq accepts."""
    stripped = dsn.strip()
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if stripped.lower().startswith(prefix):
            return "postgresql://" + stripped[len(prefix) :]
    return stripped


def to_sqlalchemy(dsn: str) -> str:
    """A URL that SQLAlchemy resolves to the psycopg 3 driver."""
    libpq = to_libpq(dsn)
    if is_uri(libpq):
        return "postgresql+psycopg://" + libpq.split("://", 1)[1]
    # key/value DSNs: SQLAlchemy takes them through the query string of an empty URL
    from urllib.parse import quote

    return "postgresql+psycopg:///?" + "&".join(
        f"{k}={quote(str(v), safe='')}" for k, v in parse_conninfo(libpq).items()
    )


def password_of(dsn: str) -> str | None:
    """The password a DSN carries, if any (so it can be scrubbed from messages)."""
    try:
        return parse_conninfo(dsn).get("password") or None
    except ConfigError:
        pass
    match = _URI_USERINFO.match(dsn.strip())
    if match:
        return unquote(dsn.strip()[len(match.group(1)) + 1 : match.end() - 1]) or None
    return None


def mask_dsn(dsn: str | None) -> str | None:
    """The DSN with its password replaced by ``****``; safe to print."""
    if dsn is None:
        return None
    masked = _URI_USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", dsn.strip())
    masked = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, masked)
    if not is_uri(masked):
        masked = _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, masked)
    return masked


def without_password(dsn: str) -> tuple[str, bool]:
    """The DSN with any password removed (for a file others may read), and whether there was one."""
    had = bool(password_of(dsn))
    if is_uri(dsn):
        stripped = _URI_USERINFO.sub(lambda m: f"{m.group(1)}@", dsn.strip())
        stripped = _QUERY_PASSWORD_PARAM.sub(lambda m: m.group(1), stripped).rstrip("?&")
        return stripped, had
    from psycopg.conninfo import make_conninfo

    params = {k: v for k, v in parse_conninfo(dsn).items() if k != "password"}
    return make_conninfo(**params), had


def scrub(text: str, *secrets: str | None) -> str:
    """Remove every given secret (and its URL-encoded form) from a message."""
    from urllib.parse import quote

    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return text


def parse_conninfo(dsn: str) -> dict[str, str]:
    """Parse a DSN with libpq's own rules; raise ConfigError (never echoing the password) if malformed."""
    from psycopg.conninfo import conninfo_to_dict

    libpq = to_libpq(dsn)
    if not libpq:
        raise ConfigError("the database URL is empty", hint="pass --dsn postgresql://user@host/dbname")
    try:
        params = conninfo_to_dict(libpq)
    except Exception as exc:  # psycopg raises ProgrammingError with libpq's text
        reason = scrub(
            str(exc).strip().splitlines()[0] if str(exc).strip() else "unparseable", _naive_pw(libpq)
        )
        raise ConfigError(
            f"malformed database URL {mask_dsn(libpq)!r}: {reason}",
            hint="use postgresql://user:password@host:5432/dbname or 'host=... dbname=...'",
        ) from None
    if is_uri(libpq):
        # libpq ignores unknown schemes' parts silently in some cases; validate the query keys ourselves
        for key, _ in parse_qsl(urlsplit(libpq).query):
            if not key:
                raise ConfigError(f"malformed database URL {mask_dsn(libpq)!r}: empty query parameter")
    port = str(params.get("port") or "")
    if port and not all(part.strip().isdigit() for part in port.split(",")):
        raise ConfigError(
            f"malformed database URL {mask_dsn(libpq)!r}: port {port!r} is not a number",
            hint="use postgresql://user:password@host:5432/dbname",
        )
    return {k: str(v) for k, v in params.items() if v is not None}


def _naive_pw(dsn: str) -> str | None:
    match = _URI_USERINFO.match(dsn)
    if match:
        return unquote(dsn[len(match.group(1)) + 1 : match.end() - 1]) or None
    kv = _KV_PASSWORD.search(dsn)
    return kv.group(2).strip("'") if kv else None


def describe_target(dsn: str) -> str:
    """``user@host:port/db`` for messages, without the password."""
    try:
        p = parse_conninfo(dsn)
    except ConfigError:
        return mask_dsn(dsn) or ""
    host = p.get("host") or p.get("hostaddr") or "localhost"
    if host.startswith("/"):
        host = f"socket {host}"
    port = p.get("port")
    user = p.get("user")
    db = p.get("dbname")
    where = f"{host}:{port}" if port and not host.startswith("socket") else host
    return f"{user + '@' if user else ''}{where}{'/' + db if db else ''}"
