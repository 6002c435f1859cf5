"""The prebuild walk on a pool that records what it is asked to build: which steps, in which
order, by which builder, and what happens when a step or the helper fails."""

import threading
from types import SimpleNamespace

import pytest

from perf_tests.harness import prebuild
from perf_tests.harness.cache import ArtifactCache
from perf_tests.harness.prebuild import Schedule

pytestmark = pytest.mark.unit


MODEL, EXPORT = ("model", "perf"), ("export", "perf")


def variant(name, role="perf"):
    return ("variant", role, name)


class RecordingPool:
    """build_steps, is_cached and build_step as VariantPool has them, with no builder behind."""

    def __init__(self, steps: dict, cached=(), failing=(), tmp_path=None, wait_for=None):
        """``wait_for``: an event this process's builds wait on (set by the helper's first
        build), so that the helper takes a step however the threads are scheduled."""
        self.steps, self.cached, self.failing = steps, set(cached), set(failing)
        self.wait_for = wait_for
        self.built: list = []
        self.lock = threading.Lock()
        self.cache = ArtifactCache(tmp_path, log=lambda line: None)
        self.specs = {"perf": SimpleNamespace(parameters=60_000_000),
                      "quality": SimpleNamespace(parameters=3_000_000)}

    def build_steps(self, name, role):
        return self.steps[(name, role)]

    def is_cached(self, step):
        return step in self.cached

    def build_step(self, step, builder="here"):
        if builder == "here" and self.wait_for is not None:
            assert self.wait_for.wait(timeout=30), "the helper never took a step"
        with self.lock:
            done = {built for built, _ in self.built}
            waits_on = [s for chain in self.steps.values() for before, s in zip(chain, chain[1:])
                        if s == step and before not in done | self.cached]
            assert not waits_on, f"{step} built before {waits_on}"
            self.built.append((step, builder))
        if step in self.failing:
            raise RuntimeError("the builder failed")


ONNX = {("onnx-o3", "perf"): [MODEL, EXPORT, variant("onnx-o3")],
        ("onnx-int8", "perf"): [MODEL, EXPORT, variant("onnx-int8")],
        ("ct2-int8", "perf"): [MODEL, variant("ct2-int8")],
        ("pytorch-fp32", "perf"): [MODEL],
        ("ct2-int8", "quality"): [variant("ct2-int8", "quality")]}


def test_the_plan_holds_the_missing_steps_and_what_each_waits_for(tmp_path):
    pool = RecordingPool(ONNX, cached={MODEL}, tmp_path=tmp_path)
    graph = prebuild.plan(pool, list(ONNX))
    assert graph == {EXPORT: set(), variant("onnx-o3"): {EXPORT},
                     variant("onnx-int8"): {EXPORT}, variant("ct2-int8"): set(),
                     variant("ct2-int8", "quality"): set()}
    assert prebuild.longest_chain(graph) == 2


def test_a_helper_is_started_only_where_two_steps_can_be_built_at_once(tmp_path):
    chain = {("onnx-o3", "perf"): [MODEL, EXPORT, variant("onnx-o3")]}
    assert not prebuild.worth_a_helper(prebuild.plan(RecordingPool(chain, tmp_path=tmp_path),
                                                     list(chain)))
    assert not prebuild.worth_a_helper({})
    assert prebuild.worth_a_helper(prebuild.plan(RecordingPool(ONNX, tmp_path=tmp_path),
                                                 list(ONNX)))


def test_the_steps_more_wait_on_come_first_then_the_bigger_model():
    graph = {MODEL: set(), EXPORT: {MODEL}, variant("onnx-o3"): {EXPORT},
             variant("ct2-int8"): {MODEL}, variant("ct2-int8", "quality"): set(),
             variant("onnx-int8"): {EXPORT}}
    sizes = {"perf": 10, "quality": 1}
    schedule = Schedule(graph, size=lambda step: sizes[step[1]])
    assert schedule.take() == MODEL  # four steps wait on it
    assert schedule.take() == variant("ct2-int8", "quality")  # the only other one ready
    schedule.finish(MODEL, ok=True)
    assert schedule.take() == EXPORT  # two wait on it, none on ct2-int8
    assert schedule.take() == variant("ct2-int8")
    # as many waiting (none) on each: the bigger model's step first, in either order given
    for graph in ({variant("ct2-int8", "quality"): set(), variant("ct2-int8"): set()},
                  {variant("ct2-int8"): set(), variant("ct2-int8", "quality"): set()}):
        assert Schedule(graph, size=lambda step: sizes[step[1]]).take() == variant("ct2-int8")


def test_what_waits_on_a_failed_step_is_left_to_its_test():
    graph = {EXPORT: set(), variant("onnx-o3"): {EXPORT}, variant("ct2-int8"): set()}
    schedule = Schedule(graph)
    first = schedule.take()
    schedule.finish(first, ok=first != EXPORT)
    second = schedule.take()
    schedule.finish(second, ok=second != EXPORT)
    assert {first, second} == {EXPORT, variant("ct2-int8")}
    assert schedule.take() is None  # onnx-o3 is not built here: its test says why it fails
    assert schedule.failed == {EXPORT, variant("onnx-o3")}


class FakeHelper:
    """The second builder as build_all sees it, building on the same recording pool."""

    def __init__(self, pool, stops_after=None):
        self.pool, self.stops_after, self.answered = pool, stops_after, 0
        self.process = SimpleNamespace(poll=lambda: 1, wait=lambda: 1)
        self.closed = self.stopped_here = False

    def started(self):
        return True

    def build(self, step):
        if self.answered == self.stops_after:
            return None
        self.answered += 1
        if self.pool.wait_for is not None:
            self.pool.wait_for.set()
        error = ""
        try:
            self.pool.build_step(step, builder="helper")
        except RuntimeError as failure:
            error = str(failure)
        return {"built": [step[-1]], "fresh": [], "rebuilt": [], "error": error,
                "steps": [{"label": f"building {step[-1]}", "depth": 0, "seconds": 1.0,
                           "failed": bool(error)}]}

    def close(self):
        self.closed = True


@pytest.fixture
def with_helper(monkeypatch):
    made = []

    def use(pool, **options):
        def make(raw_options):
            made.append(FakeHelper(pool, **options))
            return made[-1]

        monkeypatch.setattr(prebuild, "Helper", make)
        return made

    return use


def test_every_missing_step_is_built_once_after_what_it_waits_for(tmp_path, with_helper):
    pool = RecordingPool(ONNX, tmp_path=tmp_path, wait_for=threading.Event())
    helpers = with_helper(pool)
    prebuild.build_all(pool, list(ONNX), {}, log=lambda line: None)
    steps = [step for step, _ in pool.built]
    assert sorted(steps) == sorted(prebuild.plan(RecordingPool(ONNX, tmp_path=tmp_path),
                                                 list(ONNX)))
    assert helpers[0].answered >= 1 and helpers[0].closed
    assert set(pool.cache.built) == {step[-1] for step, who in pool.built if who == "helper"}


def test_a_helper_that_stops_leaves_its_step_and_the_rest_to_this_process(tmp_path, with_helper):
    pool = RecordingPool(ONNX, tmp_path=tmp_path)
    lines = []
    with_helper(pool, stops_after=0)
    prebuild.build_all(pool, list(ONNX), {}, log=lines.append)
    assert len(pool.built) == 6 and all(who == "here" for _, who in pool.built)
    assert any("the second builder stopped" in line for line in lines), lines


def test_a_failed_step_is_said_in_one_line_and_what_waits_on_it_is_not_built(tmp_path,
                                                                              with_helper):
    pool = RecordingPool(ONNX, failing={EXPORT}, tmp_path=tmp_path)
    lines = []
    with_helper(pool)
    prebuild.build_all(pool, list(ONNX), {}, log=lines.append)
    steps = {step for step, _ in pool.built}
    assert EXPORT in steps and not steps & {variant("onnx-o3"), variant("onnx-int8")}
    assert {variant("ct2-int8"), variant("ct2-int8", "quality")} <= steps
    said = {"here": "! prebuilding the perf export failed (RuntimeError)",
            "helper": "! the second builder could not build the perf export ("}
    assert any(line.startswith(said[dict(pool.built)[EXPORT]]) for line in lines), lines
