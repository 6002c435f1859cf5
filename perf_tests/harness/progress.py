"""Outline logging for long steps: what is being done, and how long it took.

Every step is printed as it starts (``+ exporting onnx-fp32``) and ends (``  done in 12.3 s``),
so a slow CI log reads like a plan, and is kept in ``STEPS`` so that the report can list it.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Step:
    label: str
    depth: int
    seconds: float = 0.0
    failed: bool = False


STEPS: list[Step] = []
_depth = [0]


@contextmanager
def outline(label: str, stream=None):
    """Print and time one step; nested steps are indented under their parent."""
    stream = stream or sys.stderr
    step = Step(label, _depth[0])
    STEPS.append(step)
    indent = "  " * step.depth
    print(f"{indent}+ {label}", file=stream, flush=True)
    started = time.perf_counter()
    _depth[0] += 1
    try:
        yield step
    except BaseException:
        step.failed = True
        raise
    finally:
        _depth[0] -= 1
        step.seconds = time.perf_counter() - started
        verdict = "FAILED after" if step.failed else "done in"
        print(f"{indent}  {verdict} {step.seconds:.1f} s", file=stream, flush=True)
