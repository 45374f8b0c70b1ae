"""`eitp-bench bounds` (placeholder until its issue lands)."""


def register(app) -> None:
    pass
