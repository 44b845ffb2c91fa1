"""DSN parsing and masking: a password never reaches output."""

from __future__ import annotations

import pytest

from memcli.dsn import describe_target, mask_dsn, parse_conninfo, password_of, scrub
from memcli.errors import ConfigError


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:****@db:5432/app"),
        ("postgres://app:s3cret@db/app?sslmode=require", "postgres://app:****@db/app?sslmode=require"),
        (
            "postgresql://app@db/app?password=s3cret&sslmode=require",
            "postgresql://app:****@db/app?sslmode=require",
        ),
        ("host=db user=app password=s3cret dbname=app", "host=db user=app password=**** dbname=app"),
        ("host=db password='s3 cret' dbname=app", "host=db password=**** dbname=app"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    shown = mask_dsn(dsn)
    assert shown is not None
    assert sorted(shown.split()) == sorted(masked.split())


def test_password_of_and_scrub() -> None:
    dsn = "postgresql://app:p%40ss@db/app"
    assert password_of(dsn) == "p@ss"
    assert scrub("failed for p@ss and p%40ss", password_of(dsn)) == "failed for **** and ****"


def test_malformed_dsn_raises_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_conninfo("postgresql://app:hunter2@[broken/app")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError):
        parse_conninfo("host=db bogus_option=1 password=hunter2")


def test_describe_target() -> None:
    assert describe_target("postgresql://app:x@db:6543/app") == "app@db:6543/app"
    assert describe_target("host=/tmp/s dbname=m") == "socket /tmp/s/m"


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:Sec?ret9@localhost/db", "postgresql://u:****@localhost/db"),
        ("postgresql://u:Sec#ret9@localhost/db", "postgresql://u:****@localhost/db"),
        ("host=localhost password='a b' user=u", "password=**** host=localhost user=u"),
        ("postgresql+psycopg://u:p%40ss@h1:5432,h2:5433/db", "postgresql://u:****@h1:5432,h2:5433/db"),
        (
            "postgresql://u@/db?host=/run/pg&sslpassword=k3y",
            "postgresql://u@/db?host=/run/pg&sslpassword=****",
        ),
        ("postgresql://[::1]:5433/db", "postgresql://[::1]:5433/db"),
    ],
)
def test_masking_reads_the_dsn_as_libpq_does(dsn: str, masked: str) -> None:
    shown = mask_dsn(dsn)
    assert shown is not None
    assert parse_conninfo(shown) == {
        k: ("****" if "password" in k else v) for k, v in parse_conninfo(dsn).items()
    }
    assert sorted(shown.split()) == sorted(masked.split())


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("postgresql://u:pa/ss@localhost/db", "unencoded '@' or '/'"),
        ("postgresql://u:p@ss@host/db", "unencoded '@' or '/'"),
        ("postgresql://u:12/ss@localhost/db", "unencoded '@' or '/'"),
        ("postgresql://u@localhost:54x2/db", "port is not a number"),
        ("host=" + "a" * 64 + ".example.com", "longer than 63 characters"),
        ("postgresql://u:p%zz@h/db", "two hex digits"),
        ("postgresql://u:a b@h/db", "spaces"),
        ("host=h password=a b", "has no '='"),
    ],
)
def test_malformed_dsns_are_refused_without_quoting_them(dsn: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_conninfo(dsn)
    assert reason in str(info.value)
    for part in ("pa/ss", "ss@", "12/ss", "54x2", "aaaa", "p%zz", "a b"):
        assert part not in info.value.message
