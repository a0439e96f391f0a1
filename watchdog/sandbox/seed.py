"""The rows the sandbox's "database" starts with.

They carry the real columns of `metadata_enrichment_config` and `enrichment_providers`
(see TARGET-STACK.md) so a watchdog that snapshots, edits and restores the table works
against the same shape it will meet in production. Waterfalls are chosen so that
spotify is first on most fields and appears in 12 of the 14, while artist_name and
track_title never use it: the runbook's blunt "disable Spotify" then switches off
12 fields, which is what makes the surgical alternative worth having.
"""

from __future__ import annotations

from typing import Any

from watchdog.sandbox.catalog import PROVIDERS

SEED_TIMESTAMP = "2025-01-15T00:00:00"
SEED_AUTHOR = "migration_008_enrichment_metadata_fields"

Waterfall = tuple[tuple[str, float], ...]

# field -> (field_type, description, required_for_gold, min_acceptable, waterfall, rules)
_FIELDS: tuple[tuple[str, str, str, bool, float, Waterfall, dict[str, Any]], ...] = (
    ("spotify_id", "identifier", "Spotify track ID", True, 0.90,
     (("spotify", 0.95),), {"pattern": "^[A-Za-z0-9]{22}$"}),
    ("isrc", "identifier", "International Standard Recording Code", True, 0.85,
     (("spotify", 0.95), ("musicbrainz", 0.90), ("beatport", 0.85), ("discogs", 0.80)),
     {"pattern": "^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$"}),
    ("musicbrainz_id", "identifier", "MusicBrainz recording MBID", False, 0.85,
     (("musicbrainz", 0.95), ("spotify", 0.70)), {"format": "uuid"}),
    ("beatport_id", "identifier", "Beatport track ID", False, 0.80,
     (("beatport", 0.95), ("spotify", 0.60)), {"pattern": "^[0-9]+$"}),
    ("bpm", "musical_attribute", "Tempo in beats per minute", True, 0.75,
     (("spotify", 0.85), ("beatport", 0.90), ("musicbrainz", 0.70)), {"min": 40, "max": 220}),
    ("key", "musical_attribute", "Musical key (Camelot notation)", True, 0.75,
     (("spotify", 0.85), ("beatport", 0.90)), {"pattern": "^(1[0-2]|[1-9])[AB]$"}),
    ("energy", "musical_attribute", "Spotify energy 0..1", False, 0.70,
     (("spotify", 0.80),), {"min": 0, "max": 1}),
    ("danceability", "musical_attribute", "Spotify danceability 0..1", False, 0.70,
     (("spotify", 0.80),), {"min": 0, "max": 1}),
    ("valence", "musical_attribute", "Spotify valence 0..1", False, 0.70,
     (("spotify", 0.80),), {"min": 0, "max": 1}),
    ("genre", "metadata", "Primary genre", False, 0.60,
     (("spotify", 0.70), ("lastfm", 0.65), ("discogs", 0.75), ("beatport", 0.80)),
     {"max_length": 100}),
    ("release_date", "date", "Original release date", False, 0.75,
     (("spotify", 0.90), ("musicbrainz", 0.85), ("discogs", 0.80)), {"format": "date"}),
    ("duration_ms", "numeric", "Track length in milliseconds", False, 0.80,
     (("spotify", 0.95), ("musicbrainz", 0.90), ("beatport", 0.85)),
     {"min": 1000, "max": 7200000}),
    ("artist_name", "text", "Canonical artist name", True, 0.80,
     (("musicbrainz", 0.90), ("discogs", 0.85), ("lastfm", 0.80)), {"max_length": 500}),
    ("track_title", "text", "Canonical track title", True, 0.80,
     (("musicbrainz", 0.90), ("discogs", 0.85), ("beatport", 0.80)), {"max_length": 500}),
)


def config_rows() -> list[dict[str, Any]]:
    """A fresh copy of the 14 `metadata_enrichment_config` rows."""
    rows: list[dict[str, Any]] = []
    for name, ftype, description, gold, minimum, waterfall, rules in _FIELDS:
        row: dict[str, Any] = {"metadata_field": name}
        for index in range(4):
            provider, confidence = waterfall[index] if index < len(waterfall) else (None, None)
            row[f"priority_{index + 1}_provider"] = provider
            row[f"priority_{index + 1}_confidence"] = confidence
        row.update({
            "enabled": True,
            "retry_on_low_confidence": True,
            "min_acceptable_confidence": minimum,
            "field_type": ftype,
            "field_description": description,
            "required_for_gold": gold,
            "validation_rules": dict(rules),
            "last_updated": SEED_TIMESTAMP,
            "updated_by": SEED_AUTHOR,
        })
        rows.append(row)
    return rows


def provider_rows() -> list[dict[str, Any]]:
    """A fresh copy of the 5 `enrichment_providers` rows; supported_fields follow the seed."""
    supported: dict[str, list[str]] = {p: [] for p in PROVIDERS}
    for name, _t, _d, _g, _m, waterfall, _r in _FIELDS:
        for provider, _confidence in waterfall:
            supported[provider].append(name)
    return [
        {
            "provider_name": provider,
            "provider_type": "api",
            "supported_fields": supported[provider],
            "enabled": True,
            "health_status": "healthy",
            "avg_confidence_score": None,
            "success_rate": None,
            "last_health_check": None,
        }
        for provider in PROVIDERS
    ]
