"""The bottom layer for runs: what a run leaves on disk and the safe checkpoint loader (torch + YAML only)."""
