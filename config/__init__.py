"""Settings for every part of Academia Live: typed dataclasses, defaults in default.toml."""

from config.loading import load_settings
from config.settings import Settings

__all__ = ["Settings", "load_settings"]
