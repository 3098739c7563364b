"""The ``easel`` command line."""
