"""What benchmark.py runs beyond timing one step: a module a mode (docs/DESIGN.md lists them)."""
