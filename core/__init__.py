"""Easel's engine: configuration, extension host, models, sampling, jobs, API and CLI."""

__version__ = "0.1.0"
