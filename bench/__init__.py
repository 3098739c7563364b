"""Benchmarks: Easel's engine against the plain diffusers pipeline, same components."""
