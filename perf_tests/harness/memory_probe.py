"""Peak memory of one variant, measured in a fresh process so nothing else shares its heap.

    python -m perf_tests.harness.memory_probe '<json request>'   (prints one JSON line)

The child imports everything a loader needs, records RSS (the baseline), loads the variant,
records RSS again, then runs the first call and N more ``generate`` calls while a thread samples
RSS every few milliseconds. The peak is the larger of the sampled maximum and the kernel's own
high-water mark, so a spike between two samples is not missed. That mark is VmHWM from
/proc/self/status, not ru_maxrss: Linux carries ru_maxrss across exec, so a child started from a
pytest process holding gigabytes would report the parent's peak (seen here: 4.8 GB for every
variant). Freed memory that glibc or ORT's arena keeps is why we compare peaks, not "RSS after".
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path

MB = 1024 * 1024


class PeakSampler(threading.Thread):
    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        import psutil

        self.process, self.interval = psutil.Process(), interval
        self.peak, self.samples = 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def kernel_high_water_mark() -> int:
    """Peak RSS of this process image in bytes (VmHWM), or ru_maxrss where /proc is missing."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure(request: dict) -> dict:
    import psutil

    from perf_tests.harness import engines

    engines.prepare_process({request["declaration"]["engine"]})  # before torch, as in the gate
    import torch  # noqa: F401  (imported before the baseline, as every loader needs it)
    from optimum.onnxruntime import ORTModelForSeq2SeqLM  # noqa: F401
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: F401

    from perf_tests.harness import variants, workloads
    from perf_tests.harness.config import Shape
    from perf_tests.harness.declared import VariantSpec

    spec = VariantSpec.from_dict(request["declaration"])
    spec.module.import_libraries()  # the engine's own libraries, before the baseline too
    folder = Path(request["folder"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = workloads.latency_inputs(tokenizer, request["prefix"], Shape.parse(request["shape"]))
    settings = workloads.latency_settings(request["new_tokens"])
    process = psutil.Process()
    baseline = process.memory_info().rss
    sampler = PeakSampler()
    sampler.start()
    engine = variants.load(spec, folder, request["threads"])
    after_load = process.memory_info().rss
    for _ in range(1 + request["calls"]):
        engine.generate(inputs, **settings)
    sampled_peak = sampler.stop()
    high_water = kernel_high_water_mark()
    peak = max(sampled_peak, high_water)
    return {
        "variant": spec.name,
        "baseline_mb": round(baseline / MB, 1),
        "load_mb": round((after_load - baseline) / MB, 1),
        "peak_mb": round(peak / MB, 1),
        "peak_above_baseline_mb": round((peak - baseline) / MB, 1),
        "sampled_peak_mb": round(sampled_peak / MB, 1),
        "kernel_peak_mb": round(high_water / MB, 1),
        "samples": sampler.samples,
        "load_seconds": round(engine.load_seconds, 3),
        "disk_mb": round(engine.disk_bytes / 1e6, 1),
        "calls": 1 + request["calls"],
        "shape": request["shape"],
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
