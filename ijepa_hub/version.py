"""The package version: the one source (``pyproject.toml`` reads it; config.json and the Hub client record it)."""
__version__ = "0.1.0"
