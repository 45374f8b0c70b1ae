"""Simulated sensors with a known update period, averaging window and delay, and a load they follow.

    clock = ManualClock()
    load = FakeLoad(clock, idle_w=20.0, step_w=80.0)
    sensor = SimulatedSensor(load, clock, quantity="power", period_s=0.1, averaging_s=1.0, delay_s=0.05)
    qualify([sensor.as_sensor()], load, clock=clock, sleep=clock.advance)

The load draws idle_w, plus step_w while it is on. A sensor updates at phase_s + k · period_s; at
each update it takes the load's energy up to (update − delay) (quantity "energy", a counter in J) or
the mean power over the averaging window ending at (update − delay) (quantity "power"). Readings in
between repeat the last update. Integrals are exact (the power is piecewise constant); a power sensor
may add reproducible Gaussian noise per update (`noise_w`).
"""

from __future__ import annotations

import math
import random
from typing import Callable

from eitp_bench.energy.base import Sensor


class FakeLoad:
    name = "simulated square wave"

    def __init__(self, clock: Callable[[], float], idle_w: float = 20.0, step_w: float = 80.0):
        self.clock, self.idle_w, self.step_w = clock, idle_w, step_w
        self.edges: list[tuple[float, bool]] = []  # (time, on) whenever the state changes
        self.on = False

    def set(self, on: bool) -> None:
        if on != self.on:
            self.edges.append((self.clock(), on))
            self.on = on

    def close(self) -> None:
        self.set(False)

    def power(self, t: float) -> float:
        """The load's power at time t (a FakeGpu's `watts` trace)."""
        on = False
        for te, state in self.edges:
            if te > t:
                break
            on = state
        return self.idle_w + (self.step_w if on else 0.0)

    def energy_until(self, x: float) -> float:
        """∫ power from time 0 to x (exact)."""
        joules = self.idle_w * x
        on_since = None
        for t, on in self.edges:
            if t >= x:
                break
            if on:
                on_since = t
            elif on_since is not None:
                joules += self.step_w * (t - on_since)
                on_since = None
        if on_since is not None:
            joules += self.step_w * (x - on_since)
        return joules


class SimulatedSensor:
    def __init__(self, load: FakeLoad, clock: Callable[[], float], *, quantity: str, period_s: float,
                 averaging_s: float = 0.0, delay_s: float = 0.0, phase_s: float = 0.0, device: str = "cpu:0",
                 domain: str = "package", meter: str = "rapl", noise_w: float = 0.0, seed: int = 0):
        """noise_w: a power sensor's reading noise (W, Gaussian, drawn once per update, reproducible)."""
        self.load, self.clock, self.quantity = load, clock, quantity
        self.noise_w, self.seed = noise_w, seed
        self.period_s, self.averaging_s, self.delay_s, self.phase_s = period_s, averaging_s, delay_s, phase_s
        self.device, self.domain, self.meter = device, domain, meter

    def last_update(self, t: float) -> float:
        return self.phase_s + math.floor((t - self.phase_s) / self.period_s + 1e-9) * self.period_s

    def read(self) -> float:
        u = self.last_update(self.clock()) - self.delay_s
        if self.quantity == "energy":
            return self.load.energy_until(u)
        w = self.averaging_s or self.period_s
        value = (self.load.energy_until(u) - self.load.energy_until(u - w)) / w
        if self.noise_w:
            k = round((u + self.delay_s - self.phase_s) / self.period_s)  # this update's index
            value += self.noise_w * random.Random(self.seed * 1_000_003 + k).gauss(0.0, 1.0)
        return value

    def as_sensor(self) -> Sensor:
        return Sensor(self.meter, self.device, self.domain, self.quantity,
                      "simulated " + self.quantity, self.read, windows=self.quantity == "energy")
