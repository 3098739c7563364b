"""Easel's engine: configuration, extension host, models, sampling, jobs, API and CLI."""

import os

# OpenMP threads that finish a parallel region spin for a while before sleeping. On a
# small CPU that spinning starves the web server's threads, so an Interrupt click could
# wait until the generation was over (seen with 2 torch threads on 2 cores). Passive
# waiting costs a generation almost nothing; it must be set before torch starts OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
