"""Seeding: business context from the application's tables, default settings, and a demo dataset.

The library never prints: the functions return result dataclasses and raise memcli.errors.* errors.
"""

from __future__ import annotations

from memcli.seed.business import SectionCounts, SeedResult, ensure_default_settings, seed_business_context
from memcli.seed.demo import DemoRefusedError, DemoResult, generate_demo, seed_demo

__all__ = [
    "DemoRefusedError",
    "DemoResult",
    "SectionCounts",
    "SeedResult",
    "ensure_default_settings",
    "generate_demo",
    "seed_business_context",
    "seed_demo",
]
