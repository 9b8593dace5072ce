"""feeder: scheduled RSS/Atom republisher for news that has no good feed."""

__version__ = "0.1.0"
