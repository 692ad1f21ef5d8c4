"""A plugin that fails to import when IG_SYNTHETIC_BREAK=1, to show broken plugins are reported."""

import os

if os.environ.get("IG_SYNTHETIC_BREAK") == "1":
    raise ImportError("synthetic breakage requested by IG_SYNTHETIC_BREAK=1")
