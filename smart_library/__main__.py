"""Serve the smart library stand-in: ``python -m smart_library`` (settings from the environment)."""

from __future__ import annotations

import sys

from hook.serve import serve
from smart_library.settings import Settings

if __name__ == "__main__":
    sys.exit(serve("smart_library", Settings.from_env, "smart_library.app:app_from_env"))
