"""`eitp-bench run` (placeholder until its issue lands)."""


def register(app) -> None:
    pass
