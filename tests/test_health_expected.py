"""health's expected schema and revision chain agree with the models and with Alembic."""

from __future__ import annotations

import pytest
from sqlalchemy import UniqueConstraint

from memcli.config import Config
from memcli.errors import ConfigError
from memcli.health import THRESHOLDS, load_thresholds, resolve_names
from memcli.health import expected as health_expected
from memcli.health.checks_schema import _script_directory, revision_chain
from memcli.schema import models


def named_indexes(table) -> set[str]:
    names = {str(index.name) for index in table.indexes if index.name}
    names |= {
        c.name for c in table.constraints if isinstance(c, UniqueConstraint) and isinstance(c.name, str)
    }
    return names


def test_expected_objects_match_the_models() -> None:
    tables = models.Base.metadata.tables
    for name, table in tables.items():
        if name in models.CORE_TABLES:
            assert set(health_expected.CORE_TABLES[name]) == named_indexes(table), name
        else:
            assert name in health_expected.MEMCLI_TABLES, name
            assert named_indexes(table) <= set(health_expected.MEMCLI_TABLES[name]), name
    assert set(health_expected.CORE_TABLES) == set(models.CORE_TABLES)
    assert set(health_expected.MEMCLI_TABLES) - set(tables) == {"alembic_version"}


def test_revision_chain_matches_alembic() -> None:
    script = _script_directory()
    assert revision_chain() == [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert revision_chain()[-1] == script.get_current_head()


def test_every_threshold_says_where_it_comes_from() -> None:
    for key, threshold in THRESHOLDS.items():
        assert threshold.description and threshold.source, key


def test_thresholds_from_a_config_section() -> None:
    config = Config(
        config_file=None,
        data={"health": {"thresholds": {"cache_hit_ratio_warn": 0.95, "long_transaction_warn_seconds": 60}}},
    )
    limits = load_thresholds(config.section("health.thresholds"))
    assert limits["cache_hit_ratio_warn"] == 0.95 and limits["long_transaction_warn_seconds"] == 60
    assert limits["latency_warn_ms"] == THRESHOLDS["latency_warn_ms"].default
    assert limits.overridden == {"cache_hit_ratio_warn", "long_transaction_warn_seconds"}
    with pytest.raises(ConfigError, match="unknown health threshold"):
        load_thresholds({"cache_hit": 1})
    with pytest.raises(ConfigError, match="non-negative number"):
        load_thresholds({"cache_hit_ratio_warn": True})


def test_check_selection_by_name_and_group() -> None:
    assert resolve_names(["schema"]) == ["schema_revision", "schema_objects", "invalid_indexes"]
    assert "vector_recall" not in resolve_names(["vector"])
    assert "vector_recall" in resolve_names(["vector"], deep=True)
    assert resolve_names(["vector-recall"]) == ["vector_recall"]  # named explicitly: runs without --deep
    with pytest.raises(ConfigError, match="unknown health check"):
        resolve_names(["bogus"])
