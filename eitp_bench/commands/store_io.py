"""`eitp-bench store_io` (placeholder until its issue lands)."""


def register(app) -> None:
    pass
