"""Kept so existing imports work; the server lives in devtools.throwaway_pg."""

from devtools.throwaway_pg import ThrowawayPostgresql

__all__ = ["ThrowawayPostgresql"]
