"""Serve the hook: ``python -m hook`` (settings from environment variables)."""

from __future__ import annotations

import sys

from hook.serve import hook_options, serve
from hook.settings import Settings

if __name__ == "__main__":
    sys.exit(serve("hook", Settings.from_env, "hook.app:app_from_env", hook_options))
