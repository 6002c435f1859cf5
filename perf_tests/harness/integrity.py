"""Artifact integrity: each file's size and content hash at build time, checked on every reuse.

A build records a manifest (``{relative path: {"size": n, "sha256": hex}}``) in artifact.json.
Hashing every reused file on every run would cost seconds per gigabyte, so a reuse compares cheap
stat stamps first (size, mtime, ctime, inode, device; kept in ``.stamps.json`` beside the files)
and hashes only a file whose stamp is missing, differs, or is too fresh to trust.

What is guaranteed: a reused file holds the bytes hashed at build time, unless it was changed
without changing its size, mtime, ctime, inode or device. A write through the file system cannot
do that: the kernel sets ctime on every write, truncation and ``utime`` call, and ctime cannot be
set back. A stamp taken within ``RACY_SECONDS`` of a file's last change is not trusted (a write in
the same clock tick as the stamp could leave the times unchanged; git's "racily clean" index has
the same rule), so the first reuse after a build hashes the files once. Not detected until the
stamp next differs: damage beneath the file system (media faults, raw block writes).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from perf_tests.harness.files import written_whole

# sha256 and not blake2b: on this project's 2-core AMD EPYC VM (SHA extensions) hashing a 58 MB weights
# file took 32 ms with sha256 (1.8 GB/s), 65-67 ms with blake2b (0.9 GB/s), best of 3.
ALGORITHM = "sha256"
STAMPS = ".stamps.json"
RACY_SECONDS = 2.0
BLOCK = 1 << 20


def file_hash(path: Path) -> str:
    digest = hashlib.new(ALGORITHM)
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path, skip: set[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in skip
                  and not p.name.startswith(STAMPS))  # the stamps and their temporary files


def manifest(folder: Path, skip: set[str]) -> dict[str, dict]:
    """Size and content hash of every file under ``folder`` (but those named in ``skip``)."""
    return {path.relative_to(folder).as_posix(): {"size": path.stat().st_size,
                                                  ALGORITHM: file_hash(path)}
            for path in _files(folder, skip)}


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _read_stamps(folder: Path) -> dict:
    """The stamps recorded when each file was last hashed; any that is not of the shape written
    here is left out (it only costs that file's hash)."""
    try:
        stamps = json.loads((folder / STAMPS).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stamps, dict):
        return {}
    return {name: entry for name, entry in stamps.items() if isinstance(entry, dict)
            and isinstance(entry.get("stamp"), list) and isinstance(entry.get("taken_ns"), int)}


def is_manifest(files) -> bool:
    """Whether ``files`` has the shape ``manifest`` gives: name -> {"size": int, ALGORITHM: str}."""
    return isinstance(files, dict) and all(
        isinstance(entry, dict) and isinstance(entry.get("size"), int)
        and isinstance(entry.get(ALGORITHM), str) for entry in files.values())


def _write_stamps(folder: Path, stamps: dict) -> None:
    """Whole, and best effort: a read-only cache only costs a rehash next time."""
    try:
        with written_whole(folder / STAMPS) as tmp:
            tmp.write_text(json.dumps(stamps) + "\n")
    except OSError:
        pass


def _trusted(stamp: list[int], recorded: dict, now_ns: int) -> bool:
    racy_ns = int(RACY_SECONDS * 1e9)
    return (recorded.get("stamp") == stamp and stamp[2] < recorded.get("taken_ns", 0) - racy_ns
            and recorded.get("taken_ns", 0) <= now_ns)


def check(folder: Path, files: dict[str, dict], clock=time.time_ns) -> tuple[str, int]:
    """("", bytes hashed) when every file matches its manifest entry, else (the first problem in
    a few words, bytes hashed). Refreshes the stamps of files whose content was verified."""
    old, new = _read_stamps(folder), {}
    hashed = 0
    for name, expected in sorted(files.items()):
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            return f"{name} is missing", hashed
        if stat.st_size != expected["size"]:
            return f"{name} has {stat.st_size} bytes, {expected['size']} expected", hashed
        stamp = _stamp(stat)
        if _trusted(stamp, old.get(name, {}), clock()):
            new[name] = old[name]
            continue
        hashed += stat.st_size
        if file_hash(path) != expected.get(ALGORITHM):
            return f"{name}'s content differs from its {ALGORITHM} at build time", hashed
        new[name] = {"stamp": stamp, "taken_ns": clock()}
    if new != old:
        _write_stamps(folder, new)
    return "", hashed
