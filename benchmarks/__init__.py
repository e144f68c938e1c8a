"""Benchmarks against the peers, installed as `edgembed.bench` so that `edgembed bench` runs
from the slim install. Importing this package imports no peer (no torch, no fastembed)."""
