"""What this CPU is and which int8 quantization presets it can run.

optimum names four dynamic-quantization presets after the instruction sets they target. A preset
is runnable when the CPU has every flag it needs; the best runnable one is the default.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

# Preset -> (machine architecture, CPU flags it needs), best first within an architecture.
PRESETS: dict[str, tuple[str, frozenset[str]]] = {
    "avx512_vnni": ("x86_64", frozenset({"avx512f", "avx512_vnni"})),
    "avx512": ("x86_64", frozenset({"avx512f", "avx512bw"})),
    "avx2": ("x86_64", frozenset({"avx2"})),
    "arm64": ("aarch64", frozenset()),
}
MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def machine_cpus() -> int:
    """The CPUs the machine has (online), whether or not this process may use them."""
    return os.cpu_count() or 1


def allowed_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, which taskset, a container's CPU set
    or a batch scheduler narrows. More threads than this share cores and time something else."""
    try:
        return len(os.sched_getaffinity(0)) or machine_cpus()
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return machine_cpus()


@dataclass(frozen=True)
class CpuInfo:
    machine: str  # x86_64 or aarch64
    flags: frozenset[str]
    model_name: str = ""
    cpus_allowed: int = field(default_factory=allowed_cpus)
    cpus_total: int = field(default_factory=machine_cpus)

    def can_run(self, preset: str) -> tuple[bool, str]:
        """(True, "") when this CPU runs the preset, else (False, the reason in one line)."""
        machine, needed = PRESETS[preset]
        if machine != self.machine:
            return False, f"preset {preset} needs a {machine} CPU, this one is {self.machine}"
        missing = sorted(needed - self.flags)
        if missing:
            return False, f"preset {preset} needs CPU flags {', '.join(missing)}, which this CPU lacks"
        return True, ""

    def best_preset(self) -> str:
        for preset in PRESETS:
            if self.can_run(preset)[0]:
                return preset
        raise ValueError(f"no int8 preset runs on a {self.machine} CPU with these flags")


def _flags_from_cpuinfo(text: str) -> frozenset[str]:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def _model_name(text: str) -> str:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "CPU part"):
            return value.strip()
    return ""


def detect(cpuinfo_path: Path | None = None) -> CpuInfo:
    """This machine's CPU. PERF_CPUINFO names another cpuinfo file (a test knob: it lets the
    suite show, on any machine, what happens on a CPU with fewer flags)."""
    cpuinfo_path = Path(cpuinfo_path or os.environ.get("PERF_CPUINFO") or "/proc/cpuinfo")
    machine = platform.machine().lower()
    machine = MACHINE_ALIASES.get(machine, machine)
    text = cpuinfo_path.read_text() if cpuinfo_path.exists() else ""
    if "PERF_CPUINFO" in os.environ and "Features" in text and "flags" not in text:
        machine = "aarch64"  # an arm64 cpuinfo file stands for an arm64 machine
    return CpuInfo(machine, _flags_from_cpuinfo(text), _model_name(text))


if __name__ == "__main__":
    # Prints the tox arch environment for this CPU, e.g. x86_64-avx2 (used by the workflows).
    info = detect()
    print(f"{info.machine}-{info.best_preset()}")
