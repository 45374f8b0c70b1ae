"""One module per CLI command; each exposes `register(app)`.

One job: parse, call, print. The top of the import order: a command may import any package; nothing
imports commands/ but cli.py.
"""
