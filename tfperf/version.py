"""tfperf's version: one place, read by the CLI, results.json and pyproject.toml."""

__version__ = "0.1.0"
