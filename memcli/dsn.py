"""Connection strings: parsed by libpq, validated, and shown only with their secrets masked.

A DSN may be a URI (``postgresql://user:secret@host/db``) or libpq key/value pairs
(``host=... password=secret``). libpq accepts reserved characters in a URI's password (``u:Sec?ret9@h``,
``u:Sec#ret9@h``) and splits ambiguous ones in ways no pattern can predict, so nothing here reads a DSN
with a pattern: libpq's own parser (``psycopg.conninfo.conninfo_to_dict``) decides what each part is, and
every shown form is rebuilt from that parsed form with the secrets replaced by ``****``.

A DSN libpq splits in a way that puts part of a password where a host, port or database name belongs
(``u:pa/ss@h``, ``u:p@ss@h``) is refused, and no message ever quotes the DSN or libpq's complaint about
it: both may hold the password.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

from memcli.errors import ConfigError

MASK = "****"
# libpq parameters whose values are secrets (sslpassword unlocks the client's key).
SECRET_KEYS = ("password", "sslpassword")
_URI_SCHEMES = ("postgresql", "postgres")
_DRIVER_SCHEMES = ("postgresql+psycopg", "postgresql+psycopg2")
_FORMS = "postgresql://user:password@host:5432/dbname or 'host=... dbname=...'"
_ENCODE_HINT = (
    "percent-encode reserved characters of the user and password (@ as %40, / as %2F, : as %3A, "
    "space as %20, % as %25), or use the key=value form: host=... user=... password='...'"
)
# What libpq says about a DSN it cannot parse, in our words: libpq's own text quotes the offending part.
_LIBPQ_REASONS = (
    ("invalid percent-encoded token", "a '%' is not followed by two hex digits (write a literal % as %25)"),
    ("forbidden value %00", "it contains %00"),
    ("unexpected spaces", "it contains spaces (write them as %20)"),
    ('missing "=" after', "a key=value pair has no '=' (quote a value with spaces: key='...')"),
    ("unterminated quoted string", "a quoted value is not closed"),
    ("invalid connection option", "it names an unknown connection option"),
    ("invalid uri query parameter", "it has an unknown query parameter"),
    ("extra key/value separator", "a query parameter has two '='"),
    ("missing key/value separator", "a query parameter has no '='"),
    ("end of string reached when looking for matching", "an IPv6 address lacks its closing ']'"),
    ("ipv6 host address may not be empty", "an IPv6 address is empty"),
    ("unexpected character", "it has an unexpected character after the host"),
)


def is_uri(dsn: str) -> bool:
    scheme, sep, _ = dsn.strip().partition("://")
    return bool(sep) and scheme.lower() in (*_URI_SCHEMES, *_DRIVER_SCHEMES)


def to_libpq(dsn: str) -> str:
    """Turn a SQLAlchemy-style URL (``postgresql+psycopg://``) into one libpq accepts."""
    stripped = dsn.strip()
    scheme, sep, rest = stripped.partition("://")
    if sep and scheme.lower() in _DRIVER_SCHEMES:
        return "postgresql://" + rest
    return stripped


def parse_conninfo(dsn: str) -> dict[str, str]:
    """Parse a DSN with libpq's own rules; raise ConfigError (never quoting any of it) if malformed."""
    from psycopg.conninfo import conninfo_to_dict

    libpq = to_libpq(dsn)
    if not libpq:
        raise ConfigError("the database URL is empty", hint=f"give {_FORMS}")
    try:
        parsed = conninfo_to_dict(libpq)
    except Exception as exc:  # psycopg raises ProgrammingError with libpq's text, which quotes the DSN
        raise ConfigError(
            f"malformed database URL: {_libpq_reason(str(exc))}",
            hint=_ENCODE_HINT if is_uri(libpq) else f"use {_FORMS}",
        ) from None
    params = {k: str(v) for k, v in parsed.items() if v is not None}
    _validate(libpq, params)
    return params


def _libpq_reason(text: str) -> str:
    lowered = text.strip().lower()
    for prefix, reason in _LIBPQ_REASONS:
        if lowered.startswith(prefix):
            return reason
    return "libpq cannot parse it"


def _validate(libpq: str, params: dict[str, str]) -> None:
    """Refuse what libpq parsed but no server can mean, without quoting it (it may hold a password)."""
    uri = is_uri(libpq)
    hint = _ENCODE_HINT if uri else f"use {_FORMS}"
    if uri:
        # libpq ends the user:password part at the first '@' or '/': a second '@', or an '@' after a '/'
        # that left no user, means a password with an unencoded '@' or '/' was split into host or path.
        ats = libpq.count("@")
        if ats > 1 or (ats == 1 and "user" not in params and "password" not in params):
            raise ConfigError(
                "malformed database URL: its user or password has an unencoded '@' or '/'", hint=hint
            )
    for port in filter(None, params.get("port", "").split(",")):
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError("malformed database URL: the port is not a number from 1 to 65535", hint=hint)
    for host in filter(None, params.get("host", "").split(",")):
        problem = _host_problem(host)
        if problem:
            raise ConfigError(f"malformed database URL: {problem}", hint=hint)
    for address in filter(None, params.get("hostaddr", "").split(",")):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError("malformed database URL: hostaddr is not an IP address", hint=hint) from None


def _host_problem(host: str) -> str | None:
    """Why ``host`` cannot be a host name, IP address or socket folder (None when it can)."""
    if host.startswith("/") or (len(host) > 2 and host[1] == ":" and host[2] in "\\/"):
        return None  # a Unix socket folder (or a Windows path)
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        return "the host name is longer than 253 characters"
    for label in name.split("."):
        if not label:
            return "the host name has an empty label (two dots in a row)"
        encoded = label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        if len(encoded) > 63:
            return "a label of the host name is longer than 63 characters"
        if not all(ch.isalnum() or ch in "-_" for ch in label):
            return "the host name has characters no host name has"
    return None


def secrets_of(dsn: str) -> list[str]:
    """The secrets a DSN carries (password, sslpassword), for scrubbing messages; empty if unparseable."""
    try:
        params = parse_conninfo(dsn)
    except ConfigError:
        return []
    return [params[key] for key in SECRET_KEYS if params.get(key)]


def password_of(dsn: str) -> str | None:
    """The password a DSN carries, if any."""
    try:
        return parse_conninfo(dsn).get("password") or None
    except ConfigError:
        return None


def mask_dsn(dsn: str | None) -> str | None:
    """The DSN rebuilt from its parsed form with every secret replaced by ``****``; safe to print.

    A DSN libpq cannot parse is not shown at all (its parts cannot be told apart from its password).
    """
    if dsn is None:
        return None
    try:
        params = parse_conninfo(dsn)
    except ConfigError:
        return "(malformed: not shown)"
    masked = {k: (MASK if k in SECRET_KEYS else v) for k, v in params.items()}
    return _build(dsn, masked)


def without_password(dsn: str) -> tuple[str, bool]:
    """The DSN with its secrets removed (for a file others may read), and whether it had any."""
    params = parse_conninfo(dsn)
    had = any(params.get(key) for key in SECRET_KEYS)
    return _build(dsn, {k: v for k, v in params.items() if k not in SECRET_KEYS}), had


def _build(original: str, params: dict[str, str]) -> str:
    """``params`` in the form of ``original``: a URI for a URI, key=value pairs otherwise."""
    from psycopg.conninfo import make_conninfo

    libpq = to_libpq(original)
    if not is_uri(libpq):
        return make_conninfo(**params)
    scheme = libpq.partition("://")[0].lower()
    rest = dict(params)
    user, password, dbname = rest.pop("user", None), rest.pop("password", None), rest.pop("dbname", None)
    userinfo = ""
    if user is not None or password is not None:
        userinfo = quote(user or "", safe="")
        if password is not None:
            userinfo += ":" + (MASK if password == MASK else quote(password, safe=""))
        userinfo += "@"
    hosts = rest.get("host", "").split(",") if rest.get("host") else []
    ports = rest.get("port", "").split(",") if rest.get("port") else []
    netloc = ""
    if hosts and not any(h.startswith("/") for h in hosts) and len(ports) in (0, len(hosts)):
        rest.pop("host")
        rest.pop("port", None)
        parts = [f"[{h}]" if ":" in h else quote(h, safe="") for h in hosts]
        netloc = ",".join(f"{h}:{p}" if ports else h for h, p in zip(parts, ports or parts, strict=True))
    elif not hosts and len(ports) == 1:
        netloc = f":{rest.pop('port')}"
    path = "/" + quote(dbname, safe="") if dbname is not None else ""
    query = "&".join(
        f"{key}={MASK if value == MASK and key in SECRET_KEYS else quote(value, safe='/')}"
        for key, value in rest.items()
    )
    if query and not path:
        path = "/"
    return f"{scheme}://{userinfo}{netloc}{path}{'?' + query if query else ''}"


def scrub(text: str, *secrets: str | None) -> str:
    """Remove every given secret (and its URL-encoded form) from a message."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return text


def describe_target(dsn: str) -> str:
    """``user@host:port/db`` for messages, without the password."""
    try:
        p = parse_conninfo(dsn)
    except ConfigError:
        return "(malformed database URL)"
    host = p.get("host") or p.get("hostaddr") or "localhost"
    if host.startswith("/"):
        host = f"socket {host}"
    port = p.get("port")
    user = p.get("user")
    db = p.get("dbname")
    where = f"{host}:{port}" if port and not host.startswith("socket") else host
    return f"{user + '@' if user else ''}{where}{'/' + db if db else ''}"
