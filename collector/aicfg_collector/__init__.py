"""aicfg-collector: measure op latencies on your own GPU in the database layout aicfg reads."""

__version__ = "0.1.0"
