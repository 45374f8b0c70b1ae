"""eitp-bench: measured joules and verdicts for claimed ML speed and energy gains."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import eitp_bench` stays cheap for the CLI and subprocess workers.
    if name == "EnergyMonitor":
        from eitp_bench.energy.monitor import EnergyMonitor

        return EnergyMonitor
    raise AttributeError(name)


__all__ = ["EnergyMonitor", "__version__"]
