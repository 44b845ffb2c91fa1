"""Typer choices for the schema's enumerations, built from :mod:`memcli.schema.names` so that a new tier,
content type or section type reaches every option that offers it."""

from __future__ import annotations

from enum import StrEnum

from memcli.schema import names


def _choices(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    return StrEnum(name, {value: value for value in values})  # type: ignore[return-value]


ContentType = _choices("ContentType", names.CONTENT_TYPES)
MemoryType = _choices("MemoryType", names.MEMORY_TYPES)  # every tier, semantic included
StoredTier = _choices("StoredTier", names.EXPIRING_TIERS)  # the tiers a conversation memory is stored in
SectionType = _choices("SectionType", names.SECTION_TYPES)
