"""`eitp-bench doctor` (placeholder until its issue lands)."""


def register(app) -> None:
    pass
