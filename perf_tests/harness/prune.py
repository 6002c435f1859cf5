"""Remove artifacts no run has wanted for a while; every library or recipe change leaves some.

    python -m perf_tests.harness.prune [--cache-dir DIR] [--unused-days 14] [--dry-run]

An artifact's last use is when a build or a verified reuse last touched ``.used/<folder>`` in the
cache (artifacts from before that record count from their artifact.json). Each one is removed
under its build lock, renamed aside first, so a run that wants it meanwhile either finds it whole
or builds it again; never half a folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import psutil
from filelock import FileLock

from perf_tests.harness.cache import MARKER, USED
from perf_tests.harness.config import ROOT
from perf_tests.harness.parsing import Range, argument, path_argument

DAY = 24 * 3600


def last_use(root: Path, folder: Path, files: Path | None = None) -> float:
    """When a run last wanted the artifact (its mark in USED), else when it was built;
    ``files``: where its files are now, when renamed aside."""
    used = root / USED / folder.name
    return (used if used.is_file() else (files or folder) / MARKER).stat().st_mtime


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def stale(root: Path, unused_days: float, now: float | None = None) -> list[Path]:
    """Artifact folders not used within ``unused_days``, oldest first."""
    now = time.time() if now is None else now
    found = [f for f in root.iterdir() if (f / MARKER).is_file()] if root.is_dir() else []
    old = [f for f in found if now - last_use(root, f) > unused_days * DAY]
    return sorted(old, key=lambda f: last_use(root, f))


def leftovers(root: Path) -> list[Path]:
    """Temporary folders of builds (or removals) whose process is gone: a build killed by a
    timeout or SIGKILL leaves one, and only a build of the very same artifact would clear it,
    which after a library or recipe change never comes. The name ends with the owner's pid."""
    found = []
    for folder in sorted(root.glob(".tmp-*")) if root.is_dir() else []:
        pid = folder.name.rpartition("-")[2]
        if folder.is_dir() and pid.isdigit() and not psutil.pid_exists(int(pid)):
            found.append(folder)
    return found


def remove(root: Path, folder: Path, unused_days: float) -> bool:
    """Remove one stale artifact under its build lock; False when a run has used it since it
    was listed, or another prune has removed it. Its last use is read after the folder is
    renamed aside, not before: a reuse marks its artifact wanted before verifying it, without
    the lock, so one that marked it until the rename may have verified it whole (it is put
    back), and one that marks it later finds it gone and builds it again under the lock."""
    (root / ".locks").mkdir(exist_ok=True)
    with FileLock(str(root / ".locks" / f"{folder.name}.lock")):
        if not (folder / MARKER).is_file():
            return False
        aside = root / f".tmp-{folder.name}-pruned-{os.getpid()}"
        os.rename(folder, aside)
        if time.time() - last_use(root, folder, aside) <= unused_days * DAY:
            os.rename(aside, folder)
            return False
        shutil.rmtree(aside, ignore_errors=True)
        (root / USED / folder.name).unlink(missing_ok=True)
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf_tests.harness.prune",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=path_argument("cache folder"),
                        default=os.environ.get("PERF_CACHE_DIR") or str(ROOT / ".perf-cache"))
    parser.add_argument("--unused-days", type=argument(float, Range(0)), default=14.0)
    parser.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    args = parser.parse_args(argv)
    if not args.cache_dir.exists():  # said, so that a mistyped folder is not taken for a clean one
        print(f"no cache folder at {args.cache_dir}: nothing to prune")
        return 0
    if not args.cache_dir.is_dir():
        parser.error(f"--cache-dir {args.cache_dir} is not a folder: pass the cache folder "
                     "(.perf-cache/, or what --perf-cache-dir named)")
    count, total = 0, 0.0
    for folder in leftovers(args.cache_dir):
        mb = size_mb(folder)
        if not args.dry_run:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{'would remove' if args.dry_run else 'removed'} {folder.name} ({mb:.0f} MB, left "
              "by a build that was stopped)")
        count, total = count + 1, total + mb
    for folder in stale(args.cache_dir, args.unused_days):
        try:
            mb = size_mb(folder)
            days = (time.time() - last_use(args.cache_dir, folder)) / DAY
        except FileNotFoundError:
            continue  # another prune removed it meanwhile
        if args.dry_run or remove(args.cache_dir, folder, args.unused_days):
            print(f"{'would remove' if args.dry_run else 'removed'} {folder.name} ({mb:.0f} MB, "
                  f"unused for {days:.1f} days)")
            count, total = count + 1, total + mb
    print(f"{count} artifacts, {total:.0f} MB {'to free' if args.dry_run else 'freed'} in "
          f"{args.cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
