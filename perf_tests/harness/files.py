"""Writing a result file whole or not at all."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write, renamed over ``path`` when the
    block ends and removed when it fails: a reader sees the old file or the new one, never half.
    The name is this process's and thread's own (the suffix kept, so matplotlib still knows the
    format), so two runs writing the same report at once each replace it whole, the later one
    last, instead of one renaming the other's half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
