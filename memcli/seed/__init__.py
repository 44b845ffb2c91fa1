"""Seeding: business context from the application's tables, default settings, and a demo dataset.

Pure building (``sections``, ``demo_data``) is kept apart from database I/O (``sources`` reads the app's
tables; ``business``, ``defaults`` and ``demo`` write). The library never prints: the functions return
result dataclasses and raise memcli.errors.* errors.
"""

from __future__ import annotations

from memcli.seed.business import SectionCounts, SeedResult, seed_business_context
from memcli.seed.defaults import ensure_default_settings
from memcli.seed.demo import DemoRefusedError, DemoResult, seed_demo
from memcli.seed.demo_data import generate_demo

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
