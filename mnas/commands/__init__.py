"""CLI command groups; see `mnas.cli`."""
