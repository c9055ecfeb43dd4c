"""Balto Server: real-time counter assistant (speech in, suggestions out)."""

__version__ = "0.1.0"
