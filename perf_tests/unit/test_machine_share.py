"""What the rest of the machine did during a latency test, from /proc/stat's counters: the
arithmetic on recorded counter readings (a live neighbour would make the test depend on the
machine's mood)."""

from collections import namedtuple
from types import SimpleNamespace

import pytest

from perf_tests.harness import latency

pytestmark = pytest.mark.unit

Machine = namedtuple("Machine", "user nice system idle iowait irq softirq steal")
Own = namedtuple("Own", "user system children_user children_system")


class Readings:
    """psutil and the clock, replaying two readings: before and after the rounds."""

    def __init__(self, wall, machine, own, cpus=2):
        self.wall, self.machine, self.own, self.cpus = list(wall), list(machine), list(own), cpus

    def install(self, monkeypatch):
        import psutil

        monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter=lambda: self.wall.pop(0)))
        monkeypatch.setattr(psutil, "cpu_times", lambda: self.machine.pop(0))
        monkeypatch.setattr(psutil, "cpu_count", lambda: self.cpus)
        monkeypatch.setattr(psutil, "Process", lambda: self)

    def cpu_times(self):
        return self.own.pop(0)

    def share(self, monkeypatch) -> latency.MachineShare:
        self.install(monkeypatch)
        with latency.MachineShare() as share:
            pass
        return share


def test_a_neighbour_is_the_busy_time_this_process_did_not_use(monkeypatch):
    # 10 s on 2 CPUs: the machine was busy 13 s (user 11, system 1.5, irq 0.5), 10 s of it ours
    share = Readings(
        [100.0, 110.0],
        [Machine(50, 0, 10, 500, 1, 0, 0, 0), Machine(61, 0, 11.5, 506, 1, 0.5, 0, 0.4)],
        [Own(20, 2, 0, 0), Own(29, 3, 0, 0)]).share(monkeypatch)
    assert share.others == pytest.approx(3 / 20) and share.steal == pytest.approx(0.4 / 20)


def test_a_quiet_machine_reads_zero_however_the_ticks_fall(monkeypatch):
    # this process's counters can run a tick ahead of the machine's: never a negative share
    share = Readings(
        [0.0, 4.0],
        [Machine(10, 0, 1, 90, 0, 0, 0, 0), Machine(17.9, 0, 1, 90, 0, 0, 0, 0)],
        [Own(5, 1, 0, 0), Own(13, 1, 0, 0)]).share(monkeypatch)
    assert share.others == 0.0 and share.steal == 0.0
