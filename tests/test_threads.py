"""The thread count follows the idle cores (llama.cpp threads wait for each other)."""

from pathlib import Path

import pytest

from models.generation import LoadMeter, threads_for_load


def test_threads_follow_the_idle_cores():
    assert threads_for_load(2, 2, busy=0.0) == 2
    assert threads_for_load(2, 2, busy=0.2) == 2  # an editor's burst is not a busy core
    assert threads_for_load(2, 2, busy=0.9) == 1
    assert threads_for_load(2, 2, busy=5.0) == 1  # never fewer than one
    assert threads_for_load(8, 16, busy=3.0) == 8  # never more than configured
    assert threads_for_load(4, 4, busy=None) == 4  # unknown load: as configured


def _write(stat: Path, own: Path, busy: int, idle: int, own_ticks: int) -> None:
    # user nice system idle iowait irq softirq steal; iowait and steal are not busy
    stat.write_text(f"cpu  {busy} 0 0 {idle} 7 0 0 5 0 0\ncpu0 1 2 3 4\n")
    fields = ["S"] + ["0"] * 10 + [str(own_ticks), "0"] + ["0"] * 30
    own.write_text("123 (py (thread) x) " + " ".join(fields) + "\n")


def test_load_meter_counts_other_processes_cpu_time_over_the_window(tmp_path: Path):
    stat, own = tmp_path / "stat", tmp_path / "self"
    now = [100.0]
    meter = LoadMeter(stat, own, clock=lambda: now[0], ticks_per_s=100)
    _write(stat, own, busy=1000, idle=1000, own_ticks=400)
    assert meter.busy_cores() is None  # the first reading has no window yet
    # One second later: 150 ticks busy in all, 50 of them this process's own.
    now[0] += 1.0
    _write(stat, own, busy=1150, idle=1050, own_ticks=450)
    assert meter.busy_cores() == 1.0
    # A reading too soon after keeps the last value (too few ticks to tell).
    now[0] += 0.1
    _write(stat, own, busy=1170, idle=1050, own_ticks=450)
    assert meter.busy_cores() == 1.0
    # Then our own pass used both cores for 2 s, others 20 ticks, over the 2.1 s since
    # the last window's end: almost nothing else is busy.
    now[0] += 2.0
    _write(stat, own, busy=1570, idle=1050, own_ticks=850)
    assert meter.busy_cores() == pytest.approx(0.2 / 2.1)
    assert LoadMeter(tmp_path / "missing", own).busy_cores() is None
