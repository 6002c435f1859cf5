"""Build what a session's tests will load before any of them is timed, two builds at a time.

A cold run spends its first minutes in builders that each keep about one core busy: optimum's
export traces the model in Python, and ORTOptimizer, the quantizer and ORT's BeamSearch tools
rewrite protobufs. On this project's 2-core machines a second builder nearly halves that wait.

The build steps form a graph: the scale model, then optimum's export, then each recipe built from
one of them (``VariantPool.build_steps``). It is walked with graphlib: this process builds one
ready step while a helper process (``python -m perf_tests.harness.prebuild``, given the session's
options) builds another. Where both need the same artifact, the cache's lock makes one wait and
reuse it. The tests then find what was built in the cache.

Prebuilding only saves time. A step that fails here is built again when a test first needs it, so
that test reports the error as it always did; a helper that cannot start leaves every step to this
process. Nothing is timed while it runs: the session's first gate test asks for the pool, and its
rounds start after ``build_all`` returns.
"""

from __future__ import annotations

import graphlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from contextlib import contextmanager

from perf_tests.harness.pool import VariantPool
from perf_tests.harness.progress import STEPS, Step, outline

BuildStep = tuple  # ("model", role), ("export", role) or ("variant", role, name)


def plan(pool: VariantPool, wanted: Iterable[tuple[str, str]]) -> dict[BuildStep, set[BuildStep]]:
    """The build steps of the wanted (variant, role) pairs that the cache does not hold yet, each
    with the missing steps it must wait for."""
    graph: dict[BuildStep, set[BuildStep]] = {}
    for variant, role in wanted:
        steps = pool.build_steps(variant, role)
        for before, step in zip([None, *steps], steps):
            graph.setdefault(step, set())
            if before is not None:
                graph[step].add(before)
    missing = {step for step in graph if not pool.is_cached(step)}
    return {step: graph[step] & missing for step in graph if step in missing}


def longest_chain(graph: dict[BuildStep, set[BuildStep]]) -> int:
    """How many steps the longest run of steps, each waiting on the one before, holds."""
    depth: dict[BuildStep, int] = {}
    for step in graphlib.TopologicalSorter(graph).static_order():
        depth[step] = 1 + max((depth[before] for before in graph.get(step, ())), default=0)
    return max(depth.values(), default=0)


def worth_a_helper(graph: dict[BuildStep, set[BuildStep]]) -> bool:
    """A helper pays for its start (importing torch and optimum, about 5 s of one core) only
    where two missing steps could be built at once: the graph is not one chain."""
    return len(graph) > longest_chain(graph)


def _waiting_on(graph: dict[BuildStep, set[BuildStep]]) -> dict[BuildStep, int]:
    """How many steps wait, directly or not, on each step: those are built first, so the longest
    chain (the export and what is built from it) starts early."""
    later: dict[BuildStep, set[BuildStep]] = {step: set() for step in graph}
    # from the end of a topological order, every step comes after all that wait on it
    for step in reversed(list(graphlib.TopologicalSorter(graph).static_order())):
        for before in graph[step]:
            later[before] |= {step} | later[step]
    return {step: len(steps) for step, steps in later.items()}


class Schedule:
    """The steps left, handed out one at a time to whichever builder is free, those that more
    steps wait on first; a step whose own step failed is not built here at all."""

    def __init__(self, graph: dict[BuildStep, set[BuildStep]], size=lambda step: 0):
        """``size(step)``: how big the step's model is; of two steps as many others wait on,
        the bigger model's is built first (the scale model takes ten times the tiny one's)."""
        waiting = _waiting_on(graph)
        self.graph, self.priority = graph, {step: (waiting[step], size(step)) for step in graph}
        self.sorter = graphlib.TopologicalSorter(graph)
        self.sorter.prepare()
        self.ready: list[BuildStep] = []
        self.failed: set[BuildStep] = set()
        self.changed = threading.Condition()

    def take(self) -> BuildStep | None:
        """The next step to build, waiting while every ready step is taken; None once all are
        built."""
        with self.changed:
            while True:
                self._refresh()
                if self.ready:
                    return self.ready.pop(0)
                if not self.sorter.is_active():
                    return None
                self.changed.wait()

    def finish(self, step: BuildStep, ok: bool) -> None:
        with self.changed:
            if not ok:
                self.failed.add(step)
            self.sorter.done(step)
            self.changed.notify_all()

    def give_back(self, step: BuildStep) -> None:
        """A step its builder could not finish (the helper stopped): another builder takes it."""
        with self.changed:
            self.ready.insert(0, step)
            self.changed.notify_all()

    def _refresh(self) -> None:
        while ready := self.sorter.get_ready():
            for step in ready:
                if self.graph[step] & self.failed:  # its test builds it and says why
                    self.failed.add(step)
                    self.sorter.done(step)
                else:
                    self.ready.append(step)
        self.ready.sort(key=lambda step: self.priority[step], reverse=True)


class Helper:
    """The second builder: a process that reads steps on stdin and answers each on stdout."""

    def __init__(self, raw_options: dict):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "perf_tests.harness.prebuild", json.dumps(raw_options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.stopped_here = False  # killed by this process (the run was interrupted)

    def started(self) -> bool:
        """Wait until it has imported its libraries and read the options (about 5 s): until
        then this process takes every step, the first of the longest chain included."""
        return self._answer() is not None

    def build(self, step: BuildStep) -> dict | None:
        """Its answer once it has built the step; None when it stopped without one."""
        try:
            self.process.stdin.write(json.dumps(step) + "\n")
            self.process.stdin.flush()
        except OSError:
            return None
        return self._answer()

    def _answer(self) -> dict | None:
        for line in self.process.stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue  # not an answer: something wrote to stdout before serve moved it
            if isinstance(answer, dict):
                return answer
        return None

    def close(self) -> None:
        """Let it exit (it reads the end of its input), or stop it if it does not."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self.process.stdout.close()

    def kill(self) -> None:
        """Stop it now (this run was interrupted): a build it leaves half done stays in its
        temporary folder, which prune removes once it is gone."""
        self.stopped_here = True
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def build_all(pool: VariantPool, wanted: Iterable[tuple[str, str]], raw_options: dict,
              log=None) -> None:
    """Build the wanted variants' missing artifacts, this process and a helper side by side."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    graph = plan(pool, wanted)
    if not worth_a_helper(graph):
        return  # one chain or nothing: built on first use, as it would be here anyway
    schedule = Schedule(graph, size=lambda step: pool.specs[step[1]].parameters or 0)
    with outline(f"building {len(graph)} artifacts, two at a time (this process and a helper)"):
        try:
            helper = Helper(raw_options)
        except OSError as error:
            log(f"! no second builder ({error}): building one step at a time")
            helper = None
        if helper is not None:
            driver = threading.Thread(target=_drive, args=(helper, pool, schedule, log),
                                      daemon=True)
            driver.start()
        try:
            with _one_torch_thread():
                while (step := schedule.take()) is not None:
                    schedule.finish(step, _build_here(pool, step, log))
        except BaseException:
            if helper is not None:
                helper.kill()
            raise
        if helper is not None:
            driver.join()
            helper.close()


@contextmanager
def _one_torch_thread():
    """Each builder traces with one torch thread: two builders with two each would oversubscribe
    the two cores. The engines set their own thread count when they load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _drive(helper: Helper, pool: VariantPool, schedule: Schedule, log) -> None:
    """The helper's side of the walk, in a thread of this process that mostly waits for it."""
    if not helper.started():
        log(f"! the second builder did not start (exit {helper.process.wait()}): this process "
            "builds every step")
        return
    while (step := schedule.take()) is not None:
        answer = helper.build(step)
        if answer is None:
            if not helper.stopped_here:  # not news when this process stopped it
                log(f"! the second builder stopped (exit {helper.process.poll()}) while "
                    f"building {_name(step)}: this process builds the rest")
            schedule.give_back(step)
            return
        if answer.get("error"):
            log(f"! the second builder could not build {_name(step)} ({answer['error']}); the "
                "test that needs it builds it again")
        try:
            _adopt(pool, answer)
        finally:  # never leave this process waiting for a step nobody builds
            schedule.finish(step, not answer.get("error"))


def _build_here(pool: VariantPool, step: BuildStep, log) -> bool:
    try:
        pool.build_step(step)
        return True
    except Exception as error:  # any builder may raise; the test that needs it will say why
        log(f"! prebuilding {_name(step)} failed ({type(error).__name__}); the test that needs "
            "it builds it again")
        return False


def _adopt(pool: VariantPool, answer: dict) -> None:
    """Count what the helper built as built in this session, and keep its steps for the report."""
    pool.cache.adopt(answer.get("built", []), answer.get("fresh", []), answer.get("rebuilt", []))
    for done in answer.get("steps", []):
        STEPS.append(Step(f"{done['label']} (second builder)", done["depth"] + 1,
                          done["seconds"], done["failed"]))


def _name(step: BuildStep) -> str:
    kind, role = step[:2]
    return f"{step[2]} ({role})" if kind == "variant" else f"the {role} {kind}"


# -------------------------------------------------------------------------------- the helper

class _Prefixed:
    """The helper's progress lines, marked as its own where they meet this process's."""

    def __init__(self, stream, prefix: str):
        self.stream, self.prefix, self.fresh_line = stream, prefix, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            self.stream.write((self.prefix if self.fresh_line else "") + piece)
            self.fresh_line = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):  # isatty, fileno, encoding: the stream's own
        return getattr(self.stream, name)


def serve(raw_options: dict) -> None:
    """Build each step read from stdin; answer each with one JSON line on the real stdout."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a builder prints goes with the progress lines, never in a reply
    sys.stdout = sys.stderr = _Prefixed(sys.__stderr__, "[second builder] ")

    from perf_tests.harness import cpu
    from perf_tests.harness.plugin import make_gate

    pool = make_gate(raw_options, cpu.detect()).pool
    import torch

    torch.set_num_threads(1)  # as in _one_torch_thread: two builders share the two cores
    replies.write(json.dumps({"started": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        step = tuple(json.loads(line))
        cache = pool.cache
        steps_before, built_before, rebuilt_before = len(STEPS), len(cache.built), len(cache.rebuilt)
        fresh_before = set(cache.fresh)
        error = ""
        try:
            pool.build_step(step)
        except Exception as failure:  # the test that builds it again reports it
            error = f"{type(failure).__name__}: {str(failure).strip()[:200]}"
        answer = {"step": list(step), "error": error, "built": cache.built[built_before:],
                  "rebuilt": cache.rebuilt[rebuilt_before:],
                  "fresh": sorted(cache.fresh - fresh_before),
                  "steps": [vars(done) for done in STEPS[steps_before:]]}
        replies.write(json.dumps(answer) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
