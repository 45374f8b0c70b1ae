"""RaplMeter against fake powercap trees whose true energy is known to the µJ."""

from __future__ import annotations

import dataclasses
import random
import sys
import time

import pytest

from eitp_bench.energy.rapl import JUMP_RESOLUTION_J, STALL_READS, STALL_S, RaplMeter, unwrap_step
from eitp_bench.errors import UserError
from fake_powercap import INTEL_RANGE_UJ, LAYOUTS, FailingReader, FakePowercap, build_layout

RANGE_20J = 20_000_000


def has_flag(entry, code: str, text: str = "") -> bool:
    """The entry carries a flag with this code whose message contains `text`."""
    return any(f.code == code and text in f.message for f in entry.flags)



class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def by_channel(results):
    return {(r.device, r.domain): r for r in results}


def scripted(fake, clock=None, **kw):
    """A meter with no poller thread: the test calls poll() where the poller would have read."""
    return RaplMeter(fake.root, clock=clock or FakeClock(), background=False, **kw)


def started(fake):
    """(clock, a started scripted meter, its first mark): the opening of most window tests."""
    clock = FakeClock()
    meter = scripted(fake, clock)
    meter.start()
    return clock, meter, meter.mark()


# --- layout ---------------------------------------------------------------------------

def test_kernel_layout_every_zone_once_mmio_dropped(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0)
    fake.add_package(1)
    fake.add_psys(2)
    fake.add_mmio_duplicate(0, "package-0")
    # The flat links and the nested folders both exist, like the kernel's.
    assert (fake.root / "intel-rapl:0:2").is_symlink()
    assert (fake.root / "intel-rapl:0" / "intel-rapl:0:2" / "name").read_text() == "dram\n"

    meter = scripted(fake)
    channels = [(c.device, c.domain) for c in meter.channels()]
    assert sorted(channels) == sorted([
        ("cpu:0", "package"), ("cpu:0", "core"), ("cpu:0", "uncore"), ("cpu:0", "dram"),
        ("cpu:1", "package"), ("cpu:1", "core"), ("cpu:1", "uncore"), ("cpu:1", "dram"),
        ("platform", "psys"),
    ])
    assert len({z.path for z in meter.zones}) == len(meter.zones) == 9
    assert any("intel-rapl-mmio:0" in d and "duplicate" in d for d in meter.dropped)


def test_mmio_zone_kept_when_it_is_the_only_package(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_mmio_duplicate(0, "package-0")
    assert [(c.device, c.domain) for c in scripted(fake).channels()] == [("cpu:0", "package")]


def test_root_from_env_var(tmp_path, monkeypatch):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    monkeypatch.setenv("EITP_BENCH_POWERCAP_ROOT", str(fake.root))
    assert RaplMeter(background=False).root == fake.root
    assert [s.available for s in RaplMeter.probe()] == [True]


# --- exact joules -----------------------------------------------------------------------

def test_steady_package_excludes_core_uncore_dram_separate(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, energy_uj=1_000_000)
    clock, meter, begin = started(fake)
    for _ in range(4):  # 4 s: package 10 W of which core 6 W and uncore 2 W; dram 3 W besides
        clock.t += 1.0
        fake.advance_uj("intel-rapl:0", 10_000_001)
        fake.advance_uj("intel-rapl:0:0", 6_000_000)
        fake.advance_uj("intel-rapl:0:1", 2_000_000)
        fake.advance_uj("intel-rapl:0:2", 3_000_003)
        meter.poll()
    end = meter.mark()
    got = by_channel(meter.energy_between(begin, end))
    assert got[("cpu:0", "package")].joules == 40.000004  # package alone, never + core + uncore
    assert got[("cpu:0", "core")].joules == 24.0
    assert got[("cpu:0", "uncore")].joules == 8.0
    assert got[("cpu:0", "dram")].joules == 12.000012
    pkg = got[("cpu:0", "package")]
    assert (pkg.method, pkg.meter, pkg.duration_s, pkg.wraps, pkg.flags) == ("counter", "rapl", 4.0, 0, [])
    assert pkg.samples == 6 and pkg.max_gap_s == 1.0  # begin + 4 polls + end
    assert pkg.watts == pytest.approx(10.000001)


def test_one_wrap_corrected(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=RANGE_20J, children=("dram",), energy_uj=19_500_000)
    clock = FakeClock()
    meter = scripted(fake, clock, pmax_w={"package": 100.0})
    meter.start()
    begin = meter.mark()
    clock.t += 0.1
    assert fake.advance_uj("intel-rapl:0", 1_200_000) == 700_000  # wrapped at 20 J
    meter.poll()
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 345)
    pkg = by_channel(meter.energy_between(begin, meter.mark()))[("cpu:0", "package")]
    assert pkg.joules == 1.200345 and pkg.wraps == 1


def test_mark_before_start_takes_the_baseline(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=(), energy_uj=123)
    clock = FakeClock()
    meter = scripted(fake, clock)
    begin = meter.mark()
    clock.t += 1
    fake.advance_uj("intel-rapl:0", 5_000_000)
    assert meter.energy_between(begin, meter.mark())[0].joules == 5.0


def test_marks_nest_and_overlap(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    clock = FakeClock()
    meter = scripted(fake, clock)
    meter.start()
    marks = [meter.mark()]
    for uj in (1_000_000, 2_000_000, 4_000_000):
        clock.t += 1
        fake.advance_uj("intel-rapl:0", uj)
        marks.append(meter.mark())
    joules = lambda a, b: meter.energy_between(marks[a], marks[b])[0].joules  # noqa: E731
    assert (joules(0, 3), joules(1, 2), joules(0, 2), joules(1, 3)) == (7.0, 2.0, 3.0, 6.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        marks[0].t = 0.0
    with pytest.raises(ValueError):
        meter.energy_between(marks[2], marks[1])


def test_several_wraps_in_one_window_caught_by_poller_thread(tmp_path):
    """40 W into a 20 J counter wraps every 0.5 s; a 1.3 s window holds two or three wraps."""
    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=RANGE_20J, children=("dram",))
    with fake.simulate({"intel-rapl:0": 40.0, "intel-rapl:0:0": 5.0}) as sim:
        # Pmax above the simulator's catch-up rate (3 × 40 W); a 50 ms grace absorbs its ≤ 1 J
        # bursts after a stall on a loaded machine (real counters step every ~1 ms).
        meter = RaplMeter(fake.root, pmax_w={"package": 150.0, "dram": 150.0}, jump_grace_s=0.05)
        assert meter.poll_interval == pytest.approx(JUMP_RESOLUTION_J / 150)  # under the 20 J / 300 W wrap limit
        with meter:
            with sim.paused():
                begin, truth0 = meter.mark(), fake.total_uj("intel-rapl:0")
                dram0 = fake.total_uj("intel-rapl:0:0")
            time.sleep(1.3)
            with sim.paused():
                end, truth1 = meter.mark(), fake.total_uj("intel-rapl:0")
                dram1 = fake.total_uj("intel-rapl:0:0")
        got = by_channel(meter.energy_between(begin, end))
    pkg = got[("cpu:0", "package")]
    assert pkg.joules is not None, pkg.flags
    assert round(pkg.joules * 1e6) == truth1 - truth0  # exact to the µJ
    assert round(got[("cpu:0", "dram")].joules * 1e6) == dram1 - dram0
    assert truth1 - truth0 > 2 * RANGE_20J  # the counter itself went round at least twice
    assert pkg.wraps >= 2
    assert pkg.samples >= 6  # the poller read inside the window


def test_without_poller_missed_wraps_are_invalid_not_wrong(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=RANGE_20J, children=())
    clock = FakeClock()
    meter = scripted(fake, clock, pmax_w={"package": 100.0})
    meter.start()
    begin = meter.mark()
    clock.t += 1.3
    fake.advance("intel-rapl:0", 52.0)  # 2.6 ranges, read only at the end
    pkg = meter.energy_between(begin, meter.mark())[0]
    assert pkg.joules is None
    assert has_flag(pkg, "wrap_unrepairable", "wraps may have been missed")


def test_reset_is_invalid_with_reason_never_negative(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=("dram",), energy_uj=200_000_000_000)
    clock, meter, begin = started(fake)
    clock.t += 0.5
    fake.set_energy("intel-rapl:0", 5_000)  # counter reset: back to ~0 long before the range
    fake.advance_uj("intel-rapl:0:0", 1_000_000)
    meter.poll()
    clock.t += 0.5
    fake.advance_uj("intel-rapl:0", 1_000_000)  # counting again does not make it valid
    got = by_channel(meter.energy_between(begin, meter.mark()))
    pkg = got[("cpu:0", "package")]
    assert pkg.joules is None
    assert any(f.code == "implausible_jump" and f.message.startswith("counter went back") and "reset" in f.message
               for f in pkg.flags)
    assert got[("cpu:0", "dram")].joules == 1.0  # the other zone goes on


def test_unreadable_max_range_then_wrap_is_invalid(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=RANGE_20J, children=(), energy_uj=19_000_000)
    fake.remove_file("intel-rapl:0", "max_energy_range_uj")
    clock = FakeClock()
    meter = scripted(fake, clock)
    status = RaplMeter.probe(fake.root)[0]
    assert status.available and "max_energy_range_uj unreadable" in status.reason
    meter.start()
    m0 = meter.mark()
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 500_000)  # 19.5 J: no wrap yet
    m1 = meter.mark()
    assert meter.energy_between(m0, m1)[0].joules == 0.5
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 1_000_000)  # wraps to 0.5 J
    pkg = meter.energy_between(m0, meter.mark())[0]
    assert pkg.joules is None
    assert has_flag(pkg, "wrap_unrepairable", "max_energy_range_uj is unreadable")
    # A window that closed before the wrap keeps its number.
    assert meter.energy_between(m0, m1)[0].joules == 0.5


# --- unreadable files -----------------------------------------------------------------

def test_permission_denied_at_start_flags_zone_and_probe_gives_fix(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0)
    reader = FailingReader()
    reader.fail("intel-rapl:0:2/energy_uj", PermissionError(13, "Permission denied"))
    clock = FakeClock()
    meter = RaplMeter(fake.root, reader=reader, clock=clock, background=False)
    meter.start()
    begin = meter.mark()
    clock.t += 1
    fake.advance_uj("intel-rapl:0", 7_000_000)
    got = by_channel(meter.energy_between(begin, meter.mark()))
    assert got[("cpu:0", "package")].joules == 7.0
    dram = got[("cpu:0", "dram")]
    assert dram.joules is None and dram.flags[0].code == "permission_denied"
    assert "unavailable" in dram.flags[0].message and "CVE-2020-8694" in dram.flags[0].message

    statuses = {(s.device, s.domain): s for s in RaplMeter.probe(fake.root, reader=reader)}
    assert statuses[("cpu:0", "package")].available
    denied = statuses[("cpu:0", "dram")]
    assert not denied.available and "PermissionError" in denied.reason
    assert "chmod o+r" in denied.fix
    assert 'KERNEL=="intel-rapl:*", RUN+="/bin/chmod o+r /sys%p/energy_uj"' in denied.fix


def test_all_zones_unreadable_is_a_user_error(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    reader = FailingReader()
    reader.fail("energy_uj", PermissionError(13, "Permission denied"))
    with pytest.raises(UserError) as err:
        RaplMeter(fake.root, reader=reader)
    assert "udev" in err.value.fix


def test_read_error_mid_run_invalidates_only_that_zone(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=("dram",))
    reader = FailingReader()
    clock = FakeClock()
    meter = RaplMeter(fake.root, reader=reader, clock=clock, background=False)
    meter.start()
    begin = meter.mark()
    clock.t += 1
    fake.advance_uj("intel-rapl:0", 2_000_000)
    fake.advance_uj("intel-rapl:0:0", 1_000_000)
    reader.fail("intel-rapl:0:0/energy_uj", OSError(5, "Input/output error"))
    meter.poll()
    reader.heal()  # readable again, but what happened meanwhile is unknown: stays invalid
    clock.t += 1
    got = by_channel(meter.energy_between(begin, meter.mark()))
    assert got[("cpu:0", "package")].joules == 2.0
    dram = got[("cpu:0", "dram")]
    assert dram.joules is None and dram.flags[0].code == "unreadable" and "Input/output error" in dram.flags[0].message


# --- AMD dies and psys ----------------------------------------------------------------

def test_amd_die_zones_summed_into_package(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, name="package-0-die-0", children=("core",))
    fake.add_package(1, name="package-0-die-1", children=("core",))
    clock, meter, begin = started(fake)
    clock.t += 1
    fake.advance_uj("intel-rapl:0", 30_000_000)
    fake.advance_uj("intel-rapl:1", 25_000_001)
    fake.advance_uj("intel-rapl:0:0", 20_000_000)
    got = by_channel(meter.energy_between(begin, meter.mark()))
    assert set(got) == {("cpu:0", "package-die-0"), ("cpu:0", "package-die-1"), ("cpu:0", "core-die-0"),
                        ("cpu:0", "core-die-1"), ("cpu:0", "package"), ("cpu:0", "core")}
    assert got[("cpu:0", "package")].joules == 55.000001  # distinct counters: summed
    assert has_flag(got[("cpu:0", "package")], "die_sum", "sum of die zones")
    assert got[("cpu:0", "core-die-0")].joules == 20.0
    # core-die-1 never moved in 1 s: stalled, so the summed core has no number either
    assert got[("cpu:0", "core-die-1")].joules is None and has_flag(got[("cpu:0", "core-die-1")], "stalled")
    assert got[("cpu:0", "core")].joules is None and has_flag(got[("cpu:0", "core")], "stalled")


# --- CPU layouts: each figure within 0.2 % of the fake's truth (here exact to the µJ) ---------

def drive(fake, meter, clock, watts, seconds=4.0, step_s=0.05):
    """Advance every driven zone by watts × step at each poll; returns the window's entries."""
    meter.start()
    begin = meter.mark()
    truth0 = {z: fake.total_uj(z) for z in watts}
    for _ in range(round(seconds / step_s)):
        clock.t += step_s
        for zone, w in watts.items():
            fake.advance_uj(zone, round(w * step_s * 1e6))
        meter.poll()
    got = by_channel(meter.energy_between(begin, meter.mark()))
    return got, {z: fake.total_uj(z) - truth0[z] for z in watts}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_within_0_2_percent_of_truth(tmp_path, layout):
    fake = FakePowercap(tmp_path)
    watts, expect = build_layout(fake, layout)
    clock = FakeClock()
    got, truth = drive(fake, scripted(fake, clock), clock, watts)
    for channel, zones in expect.items():
        true_j = sum(truth[z] for z in zones) / 1e6
        entry = got[channel]
        assert entry.joules is not None, (channel, entry.flags)
        assert entry.joules == pytest.approx(true_j, rel=0.002), channel
        assert entry.joules == pytest.approx(true_j, abs=1e-6), channel  # in fact exact
        assert not any(f.code == "stalled" for f in entry.flags)
    # Exactly one package (and at most one dram) per socket: nothing counted twice.
    sockets = {d for d, _ in got if d.startswith("cpu:")}
    assert all(sum(1 for d, dom in got if d == s and dom == "package") == 1 for s in sockets)


def test_amd_mirrored_dies_counted_once_and_said_so(tmp_path):
    fake = FakePowercap(tmp_path)
    watts, _ = build_layout(fake, "amd-mirrored-dies")
    clock = FakeClock()
    meter = scripted(fake, clock)
    got, truth = drive(fake, meter, clock, watts, seconds=2.0)
    pkg = got[("cpu:0", "package")]
    assert pkg.joules == truth["intel-rapl:0"] / 1e6 == pytest.approx(262.0)  # 131 W × 2 s, not 524 J
    timeline = {round(s.watts, 6) for s in meter.power_samples(0, 1e9) if s.domain == "package"}
    assert timeline == {131.0}  # the timeline counts the socket once too
    assert meter.info()["die_groups"] == [{"zones": ["intel-rapl:0", "intel-rapl:1"], "mirrored": True}]
    assert has_flag(pkg, "die_mirror", "counted once") and not has_flag(pkg, "die_sum")
    die1 = got[("cpu:0", "package-die-1")]
    assert die1.joules == pkg.joules and has_flag(die1, "die_mirror", "never add it")  # kept, and flagged


def test_cascade_lake_ap_dies_and_dram_children_summed(tmp_path):
    fake = FakePowercap(tmp_path)
    watts, _ = build_layout(fake, "cascade-lake-ap")
    clock = FakeClock()
    got, truth = drive(fake, scripted(fake, clock), clock, watts, seconds=2.0)
    pkg, dram = got[("cpu:0", "package")], got[("cpu:0", "dram")]
    assert pkg.joules == pytest.approx((150.0 + 149.0) * 2, abs=1e-6)  # balanced dies: still two counters
    assert dram.joules == pytest.approx((12.5 + 11.0) * 2, abs=1e-6)
    assert has_flag(pkg, "die_sum") and has_flag(dram, "die_sum", "dram")
    assert not has_flag(pkg, "die_mirror")
    assert got[("cpu:0", "dram-die-0")].joules == pytest.approx(25.0, abs=1e-6)  # per-die channels kept


def test_distinct_dies_never_taken_for_mirrors_when_they_start_equal(tmp_path):
    """Two distinct counters both at 0 look alike until they move: the window's deltas decide."""
    fake = FakePowercap(tmp_path)
    fake.add_package(0, name="package-0-die-0", children=())
    fake.add_package(1, name="package-0-die-1", children=())
    clock, meter, begin = started(fake)
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 10_000_000)
    fake.advance_uj("intel-rapl:1", 5_000_000)
    pkg = by_channel(meter.energy_between(begin, meter.mark()))[("cpu:0", "package")]
    assert pkg.joules == 15.0 and has_flag(pkg, "die_sum")


def test_mirror_read_straddling_an_update_stays_one_counter(tmp_path):
    """One read that lands between the two die files' updates does not turn a mirror into a sum."""
    fake = FakePowercap(tmp_path)
    fake.add_zone("intel-rapl:0", "package-0-die-0", energy_uj=5_000_000)
    fake.add_zone("intel-rapl:1", "package-0-die-1", mirror_of="intel-rapl:0")
    clock, meter, begin = started(fake)
    clock.t += 0.5
    fake.advance_uj("intel-rapl:0", 50_000_000)
    fake._write("intel-rapl:1", fake.raw_uj("intel-rapl:0") - 100_000)  # die-1's file one update behind
    meter.poll()
    clock.t += 0.5
    fake.advance_uj("intel-rapl:0", 50_000_000)
    pkg = by_channel(meter.energy_between(begin, meter.mark()))[("cpu:0", "package")]
    assert pkg.joules == 100.0 and has_flag(pkg, "die_mirror")


# --- faults: flagged, never passed off ----------------------------------------------------

def test_counter_that_never_moves_is_stalled_with_no_joules(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=("dram",))
    clock, meter, begin = started(fake)
    for _ in range(10):
        clock.t += 0.1
        fake.advance_uj("intel-rapl:0", 1_000_000)  # the package moves, dram (a VM's frozen file) not
        meter.poll()
    got = by_channel(meter.energy_between(begin, meter.mark()))
    dram = got[("cpu:0", "dram")]
    assert dram.joules is None and has_flag(dram, "stalled", "over the whole window")
    assert got[("cpu:0", "package")].joules == 10.0 and got[("cpu:0", "package")].flags == []


def test_short_window_on_a_long_stalled_counter_is_stalled(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    clock, meter, _ = started(fake)
    clock.t += 2.0
    meter.poll()
    begin = meter.mark()
    clock.t += 0.05  # 50 ms window, but the counter has not moved for 2 s
    pkg = meter.energy_between(begin, meter.mark())[0]
    assert pkg.joules is None and has_flag(pkg, "stalled", "2.050 s")


def test_pause_under_the_threshold_is_not_a_stall(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    clock, meter, begin = started(fake)
    for k in range(10):
        clock.t += STALL_S / 2
        if k % 2:
            fake.advance_uj("intel-rapl:0", 1_000_000)
        meter.poll()
    pkg = meter.energy_between(begin, meter.mark())[0]
    assert pkg.joules == 5.0 and pkg.flags == []


def test_counter_frozen_mid_window_keeps_joules_flagged_with_span(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    clock = FakeClock(0.0)
    meter = scripted(fake, clock)
    meter.start()
    begin = meter.mark()
    for k in range(20):  # 2 s at 10 W; the counter stops from t=1.0 s on
        if k == 10:
            fake.freeze("intel-rapl:0")
        clock.t += 0.1
        fake.advance_uj("intel-rapl:0", 1_000_000)
        meter.poll()
    pkg = meter.energy_between(begin, meter.mark())[0]
    assert fake.total_uj("intel-rapl:0") == 20_000_000  # the truth: 20 J
    assert pkg.joules == 10.0  # what the counter shows: kept, but never unflagged
    assert has_flag(pkg, "stalled", "from t=1.000 to t=2.000 (1.000 s")
    assert has_flag(pkg, "stalled", "joules kept")
    # A later window once it counts again is clean.
    fake.freeze("intel-rapl:0", False)
    m = meter.mark()
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 1_000_000)
    later = meter.energy_between(m, meter.mark())[0]
    assert later.joules == 1.0 and later.flags == []


def test_impossible_jump_below_one_wrap_invalidates_only_that_window(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=("dram",))
    clock = FakeClock()
    meter = scripted(fake, clock, pmax_w={"package": 300.0})
    meter.start()
    m0 = meter.mark()
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 10_000_000)  # 10 J in 0.1 s: 100 W, fine
    fake.advance_uj("intel-rapl:0:0", 500_000)
    m1 = meter.mark()
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 500_000_000)  # 500 J in 0.1 s: 5 kW, far below one 262 kJ wrap
    fake.advance_uj("intel-rapl:0:0", 500_000)
    m2 = meter.mark()
    clock.t += 0.1
    fake.advance_uj("intel-rapl:0", 10_000_000)
    fake.advance_uj("intel-rapl:0:0", 500_000)
    m3 = meter.mark()
    pkg = lambda a, b: by_channel(meter.energy_between(a, b))[("cpu:0", "package")]  # noqa: E731
    bad = pkg(m0, m3)
    assert bad.joules is None and has_flag(bad, "implausible_jump", "over the 300 W maximum")
    assert pkg(m1, m2).joules is None
    assert pkg(m0, m1).joules == 10.0 and pkg(m2, m3).joules == 10.0  # windows without the jump
    assert by_channel(meter.energy_between(m0, m3))[("cpu:0", "dram")].joules == 1.5  # other zones go on


def test_pmax_from_constraint_files(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_zone("intel-rapl:0", "package-0", max_power_uw=125_000_000)  # 125 W max, 100 W long-term
    fake.add_zone("intel-rapl:1", "package-1")
    meter = scripted(fake)
    z0, z1 = meter.zones
    assert (z0.pmax_w, z0.pmax_source) == (375.0, "constraint files")  # 3 × the largest stated power
    assert (z1.pmax_w, z1.pmax_source) == (1000.0, "default")
    assert scripted(fake, pmax_w={"package": 50.0}).zones[0].pmax_source == "given"
    clock, meter, begin = started(fake)
    clock.t += 1.0
    fake.advance_uj("intel-rapl:0", 500_000_000)  # 500 J in 1 s: over 375 W, under the 1000 W default
    fake.advance_uj("intel-rapl:1", 500_000_000)
    got = by_channel(meter.energy_between(begin, meter.mark()))
    assert got[("cpu:0", "package")].joules is None and has_flag(got[("cpu:0", "package")], "implausible_jump")
    assert got[("cpu:1", "package")].joules == 500.0


def test_die_zones_not_summed_when_plain_package_exists(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    fake.add_package(1, name="package-0-die-1", children=())
    domains = [(c.device, c.domain) for c in scripted(fake).channels()]
    assert sorted(domains) == [("cpu:0", "package"), ("cpu:0", "package-die-1")]


def test_psys_is_its_own_platform_channel(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    fake.add_psys(1)
    clock, meter, begin = started(fake)
    clock.t += 2
    fake.advance_uj("intel-rapl:0", 10_000_000)
    fake.advance_uj("intel-rapl:1", 16_000_000)
    got = by_channel(meter.energy_between(begin, meter.mark()))
    assert got[("platform", "psys")].joules == 16.0 and got[("cpu:0", "package")].joules == 10.0


# --- timing, timeline, poll period ------------------------------------------------------

def test_tiny_window_flagged(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    clock, meter, begin = started(fake)
    clock.t += 0.0004
    pkg = meter.energy_between(begin, meter.mark())[0]
    assert pkg.joules == 0.0 and pkg.samples == 2
    assert has_flag(pkg, "short_window", "shorter than the counter update period")


def test_power_samples_from_poller_reads(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=("dram",))
    clock = FakeClock(0.0)
    meter = scripted(fake, clock)
    meter.start()  # poll at t=0
    for watts in (10.0, 20.0, 5.0):
        clock.t += 0.5
        fake.advance("intel-rapl:0", watts * 0.5)
        fake.advance("intel-rapl:0:0", 1.0)
        meter.poll()
    meter.mark()  # marks are not timeline points
    pkg = [(s.t, s.watts) for s in meter.power_samples(0.0, 10.0) if s.domain == "package"]
    assert pkg == [(0.5, 10.0), (1.0, 20.0), (1.5, 5.0)]
    assert [s.watts for s in meter.power_samples(0.9, 1.2)] == [20.0, 2.0]


def test_history_is_bounded(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    clock = FakeClock()
    meter = scripted(fake, clock, history=5)
    meter.start()
    begin = meter.mark()
    for _ in range(20):
        clock.t += 1
        meter.poll()
    pkg = meter.energy_between(begin, meter.mark())[0]
    assert len(meter.power_samples(0, 1e9)) == 3  # 4 poller reads left of 5 → 3 intervals
    assert pkg.samples == 22 and pkg.max_gap_s == 1.0
    assert has_flag(pkg, "history_truncated", "history buffer")


def test_poll_period_from_range_pmax_jump_resolution_and_stall(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    # 262 kJ at 1000 W would allow 131 s between reads, but a 5 J jump must stand out: 5 J / 1000 W
    assert scripted(fake).poll_interval == pytest.approx(JUMP_RESOLUTION_J / 1000.0)
    # a slow zone: the stall rule (a freeze of STALL_S spans several reads) gives the period
    assert scripted(fake, pmax_w={"package": 1.0}).poll_interval == pytest.approx(STALL_S / STALL_READS)
    assert scripted(fake, poll_interval=0.002).poll_interval == 0.002  # faster on request, never slower
    small = FakePowercap(tmp_path / "small")
    small.add_package(0, max_range_uj=RANGE_20J, children=())
    assert scripted(small, pmax_w={"package": 20.0}).poll_interval == pytest.approx(0.1)  # stall rule
    assert scripted(small, pmax_w={"package": 50.0}).poll_interval == pytest.approx(0.08)  # jump rule
    assert scripted(small, pmax_w={"package": 20.0}, poll_interval=5.0).poll_interval == pytest.approx(0.1)
    assert scripted(small, pmax_w={"package": 1e6}).poll_interval == 0.001  # floor


def test_unwrap_step_rules():
    r = RANGE_20J  # at Pmax 100 W: 10.2 J plausible in 0.1 s (2 ms grace); a whole range takes 0.2 s
    assert unwrap_step(100, 350, 0.1, r, 100.0) == (250, 0, None)
    assert unwrap_step(r - 900, 100, 0.1, r, 100.0) == (1000, 1, None)
    unfixable = unwrap_step(r - 900, 100, 0.1, None, 100.0)[2]
    assert unfixable.code == "wrap_unrepairable" and unfixable.message.endswith("cannot be corrected")
    jump = unwrap_step(0, 10_200_001, 0.1, r, 100.0)[2]
    assert jump.code == "implausible_jump" and "over the 100 W maximum" in jump.message
    assert unwrap_step(0, 10_200_000, 0.1, r, 100.0) == (10_200_000, 0, None)
    assert "wraps may have been missed" in unwrap_step(0, 1, 0.21, r, 100.0)[2].message
    # 5 J in 0.1 s at Pmax 10 W: impossible even with the grace.
    assert "over the 10 W maximum" in unwrap_step(0, 5_000_000, 0.1, INTEL_RANGE_UJ, 10.0)[2].message
    assert unwrap_step(0, 1_000_000, 0.1, INTEL_RANGE_UJ, 10.0) == (1_000_000, 0, None)


# --- probe ------------------------------------------------------------------------------

def test_probe_without_root_says_container_and_fix(tmp_path):
    (status,) = RaplMeter.probe(tmp_path / "absent")
    assert not status.available and "no powercap sysfs" in status.reason and "container" in status.fix
    with pytest.raises(UserError):
        RaplMeter(tmp_path / "absent")


def test_probe_root_without_zones_says_load_module(tmp_path):
    (status,) = RaplMeter.probe(tmp_path)
    assert not status.available and "no intel-rapl zones" in status.reason
    assert "modprobe" in status.fix and "5.11" in status.fix


def test_probe_lists_each_zone(tmp_path):
    fake = FakePowercap(tmp_path)
    fake.add_package(0)
    fake.add_mmio_duplicate()
    statuses = RaplMeter.probe(fake.root)
    assert [(s.device, s.domain, s.available) for s in statuses] == [
        ("cpu:0", "package", True), ("cpu:0", "core", True), ("cpu:0", "uncore", True), ("cpu:0", "dram", True)]


def test_pyrapl_probe_without_package_gives_install_fix(monkeypatch):
    from eitp_bench.energy.pyrapl_meter import PyRaplMeter

    monkeypatch.setitem(sys.modules, "pyRAPL", None)  # import fails as if not installed
    (status,) = PyRaplMeter.probe()
    assert not status.available and status.fix == "pip install 'eitp-bench[pyrapl]'"
    with pytest.raises(UserError):
        PyRaplMeter()


def test_fake_simulator_never_jumps_a_whole_range(tmp_path):
    """The fake's own guarantee that the poller tests rely on: a stalled simulator catches up gently."""
    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=RANGE_20J, children=())
    sim = fake.simulate({"intel-rapl:0": 1000.0}, period_s=10.0)  # thread idle: we tick by hand
    sim.start()
    try:
        time.sleep(0.1)  # 100 J due
        sim.tick()
        assert fake.total_uj("intel-rapl:0") == RANGE_20J // 20 and not sim.caught_up
    finally:
        sim.stop()


# --- the fault campaign's RAPL cases, deterministic (injected clock, scripted polls) --------------

def faulty_window(tmp_path, k: int, stated_uw, fault: str):
    """A 2 s window at 40 W read by a poller that is up to 20 % late, with one fault placed by `k`.

    fault: "jump" adds 8 J from nowhere at one step; "freeze" stops the counter for 0.55-1.2 s
    mid-window; "none" is the control. Returns (the package entry, the true joules)."""
    fake = FakePowercap(tmp_path / f"{fault}-{k}")
    fake.add_zone("intel-rapl:0", "package-0", max_power_uw=stated_uw)
    clock = FakeClock(0.0)
    meter = scripted(fake, clock)
    meter.start()
    begin = meter.mark()
    late = random.Random(k)
    jump_at, freeze = 0.2 + 0.08 * k, (0.3 + 0.02 * k, 0.3 + 0.02 * k + 0.55 + 0.035 * k)
    jumped = False
    while clock.t < 2.0:
        dt = meter.poll_interval * late.uniform(1.0, 1.2)
        clock.t += dt
        if fault == "freeze":
            fake.freeze("intel-rapl:0", freeze[0] <= clock.t < freeze[1])
        fake.advance("intel-rapl:0", 40.0 * dt)
        if fault == "jump" and not jumped and clock.t >= jump_at:
            fake.advance_uj("intel-rapl:0", 8_000_000)
            jumped = True
        meter.poll()
    pkg = meter.energy_between(begin, meter.mark())[0]
    return pkg, fake.total_uj("intel-rapl:0") / 1e6


@pytest.mark.parametrize("stated_uw", [None, 125_000_000], ids=["default-pmax", "stated-max-power"])
def test_a_jump_or_a_freeze_is_null_or_flagged_in_20_of_20_and_clean_windows_are_not(tmp_path, stated_uw):
    from eitp_bench.flags import FAULT_CODES

    caught = {"jump": 0, "freeze": 0}
    for k in range(20):
        pkg, _ = faulty_window(tmp_path, k, stated_uw, "jump")
        caught["jump"] += pkg.joules is None and has_flag(pkg, "implausible_jump", "counter jumped by")
        pkg, truth = faulty_window(tmp_path, k, stated_uw, "freeze")
        flagged = any(f.code == "stalled" and f.code in FAULT_CODES for f in pkg.flags)
        caught["freeze"] += (pkg.joules is None or flagged) and (pkg.joules or 0) < truth
        clean, truth = faulty_window(tmp_path, k, stated_uw, "none")
        assert clean.flags == [] and clean.joules == pytest.approx(truth, abs=1e-5)  # no false alarm
    assert caught == {"jump": 20, "freeze": 20}


def test_an_unclosed_monitor_lets_its_poller_thread_end_when_collected(tmp_path, monkeypatch):
    import gc
    import threading

    from eitp_bench.energy.monitor import EnergyMonitor

    fake = FakePowercap(tmp_path)
    fake.add_package(0, children=())
    monkeypatch.setenv("EITP_BENCH_POWERCAP_ROOT", str(fake.root))
    before = {t for t in threading.enumerate() if t.name == "rapl-poller"}
    monitor = EnergyMonitor(interval=0.05)
    with monitor.window("w"):
        pass
    mine = [t for t in threading.enumerate() if t.name == "rapl-poller" and t not in before]
    assert mine, "the monitor started a poller thread"
    del monitor  # never closed
    gc.collect()
    for thread in mine:
        thread.join(timeout=30)  # it notices at its next wake-up (one poll interval)
    assert not any(t.is_alive() for t in mine)
