"""Analysis: the one stage between the store and every output (report, compare, regress).

One job: judge. Frames read from the store become verdicts (claims/), statistics (stats/), tables,
findings, regressions and the cost model's estimates; nothing here writes HTML or reads a sensor.

May import: store, suite (settings, the arm registry), hardware (profiles), workloads (published model
sizes, for the cost model), theory, energy and the shared vocabulary. Never report/, exporters/ or
commands/: they import analysis (tests/test_architecture.py, LAYERS).
"""
