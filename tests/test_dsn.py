"""DSN parsing and masking: a password never reaches output."""

from __future__ import annotations

import pytest

from memcli.dsn import describe_target, mask_dsn, parse_conninfo, password_of, scrub, to_sqlalchemy
from memcli.errors import ConfigError


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:****@db:5432/app"),
        ("postgres://app:s3cret@db/app?sslmode=require", "postgres://app:****@db/app?sslmode=require"),
        (
            "postgresql://app@db/app?password=s3cret&sslmode=require",
            "postgresql://app@db/app?password=****&sslmode=require",
        ),
        ("host=db user=app password=s3cret dbname=app", "host=db user=app password=**** dbname=app"),
        ("host=db password='s3 cret' dbname=app", "host=db password=**** dbname=app"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


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


def test_describe_target_and_sqlalchemy_url() -> None:
    assert describe_target("postgresql://app:x@db:6543/app") == "app@db:6543/app"
    assert to_sqlalchemy("postgresql://app@db/app") == "postgresql+psycopg://app@db/app"
    assert to_sqlalchemy("host=/tmp/s dbname=m").startswith("postgresql+psycopg:///?")
