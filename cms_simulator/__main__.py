"""Serve the CMS simulator: ``python -m cms_simulator`` (settings from environment variables)."""

from __future__ import annotations

import sys

from cms_simulator.settings import Settings
from hook.serve import serve

if __name__ == "__main__":
    sys.exit(serve("cms_simulator", Settings.from_env, "cms_simulator.app:app_from_env"))
