"""`eitp-bench measure` (placeholder until its issue lands)."""


def register(app) -> None:
    pass
