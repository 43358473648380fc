"""What-if runs (tfperf/whatif.py): which jobs and which tf.data changes, as plain functions over specs and
results; then one real run where a slow pipeline is re-measured with each change and a fast one is left
alone."""

import dataclasses
import json
import textwrap

import pytest
from builders import result
from conftest import ROOT, run_tfperf

from tfperf.analysis import advisor
from tfperf.figures import thresholds
from tfperf.measure import whatif, whatif_changes
from tfperf.report.tables import render_markdown, render_table, what_if_rows
from tfperf.results.model import Result, RunResult
from tfperf.results.records import ErrorInfo
from tfperf.suite.spec import AUTOTUNE, CaseSpec, InputSpec, LabelsSpec, PipelineSpec

NAIVE_FILES = PipelineSpec(map_cost_ms=3, num_files=4, file_open_ms=10, element_read_ms=0.5, num_elements=64)


def waiting(wait: float | None, samples=(0.10,) * 6, status="ok", batch_size=8, waits=None) -> Result:
    """A result whose steps waited `wait` of their time for input (`waits`: each step's wait, in seconds)."""
    return result(
        batch_size=batch_size,
        status=status,
        samples=list(samples),
        input_wait_fraction=wait,
        input_wait_s=list(waits) if waits is not None else [],
    )


def case(pipeline: PipelineSpec | None = NAIVE_FILES, **kw) -> CaseSpec:
    inp = InputSpec(shape=(16,), pipeline=pipeline)
    return CaseSpec(name="c", model="zoo:mlp", input=inp, labels=LabelsSpec(classes=4), what_if=True, **kw)


# --- the threshold, as plain functions ---------------------------------------------------------------------


def test_input_bound_is_the_advisors_threshold():
    t = thresholds.INPUT_BOUND_FRACTION
    assert whatif_changes.is_input_bound(waiting(t + 0.01))
    assert not whatif_changes.is_input_bound(waiting(t))  # "above" the threshold, as the advisor's rule
    assert not whatif_changes.is_input_bound(waiting(0.05))
    assert not whatif_changes.is_input_bound(waiting(None))
    assert not whatif_changes.is_input_bound(waiting(0.9, status="failed"))
    assert not whatif_changes.is_input_bound(waiting(0.9, samples=()))


def test_what_if_runs_only_when_asked_fed_by_tf_data_and_input_bound():
    slow = waiting(0.6)
    assert whatif_changes.needs_what_if(case(), slow)
    assert not whatif_changes.needs_what_if(case().replace(what_if=False), slow)
    assert not whatif_changes.needs_what_if(case(), waiting(0.1))
    # In-memory batches and a plain function's inputs have no tf.data pipeline to change.
    assert not whatif_changes.needs_what_if(case(pipeline=None), slow)
    assert not whatif_changes.needs_what_if(
        CaseSpec(name="f", function="s.py:f", inputs="s.py:i", what_if=True), slow
    )
    assert whatif_changes.needs_what_if(
        CaseSpec(name="d", model="zoo:mlp", dataset="d.py:ds", what_if=True), slow
    )


def test_the_input_bound_rule_fires_on_the_same_results():
    run = RunResult(suite={}, environment={}, results=[waiting(0.6, waits=[0.06] * 6), waiting(0.1)])
    fired = [r for r, s in advisor.rule_input_bound(run) if s.code == "input-bound"]
    assert fired == [r for r in run.results if whatif_changes.is_input_bound(r)] == [run.results[0]]


# --- which changes ------------------------------------------------------------------------------------------


def test_naive_file_pipeline_gets_every_change_each_mapped_to_its_suggestion_code():
    changes = whatif_changes.applicable_changes(case(), 8, available_bytes=8 << 30)
    codes = {c.name: advisor.what_if_code(c.name) for c in changes}
    singles = {code for name, code in codes.items() if code}
    assert singles == {"prefetch", "parallelize-map", "parallel-interleave", "cache-dataset", "small-batch"}
    combined = [c for c in changes if c.combined]
    assert len(combined) == 1 and codes[combined[0].name] is None  # never suggested as one code
    assert combined[0].pipeline == {
        "prefetch": AUTOTUNE,
        "num_parallel_calls": AUTOTUNE,
        "interleave": AUTOTUNE,
        "cache": True,
    }
    bigger = [c for c in changes if c.batch_factor != 1]
    assert len(bigger) == 1 and "16" in bigger[0].code and codes[bigger[0].name] == "small-batch"
    for c in changes:
        assert c.code.strip() and "thread" not in c.name  # the threading rule keys on "thread"


def test_changes_that_do_not_apply_are_not_run():
    tuned = PipelineSpec(map_cost_ms=0, prefetch=AUTOTUNE, num_files=1, cache=True)
    names = [c.name for c in whatif_changes.applicable_changes(case(tuned), 8, available_bytes=8 << 30)]
    assert names == ["larger batch (8 → 16)"]
    # Too big to cache: 1M elements of 4096 floats with 1 GB free.
    huge = case(PipelineSpec(map_cost_ms=2, num_elements=1 << 20)).replace(
        input=InputSpec(shape=(4096,), pipeline=PipelineSpec(map_cost_ms=2, num_elements=1 << 20))
    )
    assert not any(
        "cache" in c.name for c in whatif_changes.applicable_changes(huge, 8, available_bytes=1 << 30)
    )


def test_user_dataset_is_wrapped_and_cached_only_when_finite_unshuffled_and_small():
    ds_case = CaseSpec(name="d", model="zoo:mlp", dataset="d.py:ds", what_if=True)
    small = {"finite": True, "shuffled": False, "bytes": 1 << 20}
    names = [
        c.name
        for c in whatif_changes.applicable_changes(ds_case, 8, dataset_facts=small, available_bytes=8 << 30)
    ]
    assert "prefetch(AUTOTUNE) appended" in names and "parallel map via tf.data.Options" in names
    assert "cache() appended" in names
    for facts in ({**small, "shuffled": True}, {**small, "finite": False}, {**small, "bytes": 4 << 30}, None):
        names = [
            c.name
            for c in whatif_changes.applicable_changes(
                ds_case, 8, dataset_facts=facts, available_bytes=8 << 30
            )
        ]
        assert not any("cache" in n for n in names), facts
    options = next(c for c in whatif_changes.applicable_changes(ds_case, 8) if "Options" in c.name)
    assert "map_parallelization = True" in options.code and "parallel_batch = True" in options.code
    assert advisor.what_if_code(options.name) == "parallelize-map"


# --- entries and what the advisor makes of them -------------------------------------------------------------


def test_entries_say_whether_a_change_helped_and_only_those_that_did_are_suggested():
    base = waiting(0.6, samples=[0.100, 0.101, 0.099, 0.102, 0.100, 0.098])
    faster = waiting(0.1, samples=[0.050, 0.051, 0.049, 0.052, 0.050, 0.048])
    same = waiting(0.6, samples=[0.099, 0.100, 0.103, 0.101, 0.097, 0.100])
    prefetch, pmap = whatif_changes.applicable_changes(case(), 8)[:2]
    good = whatif_changes.what_if_entry(prefetch, base, faster)
    bad = whatif_changes.what_if_entry(pmap, base, same)
    assert good.helped and good.speedup == pytest.approx(2.0, rel=0.05) and good.input_wait_fraction == 0.1
    assert not bad.helped
    base.what_if = [good, bad]
    codes = [s.code for _, s in advisor.rule_what_if(RunResult(suite={}, environment={}, results=[base]))]
    assert codes == ["prefetch"]
    # A faster-looking change marked as not helping (not significant) is never suggested either.
    base.what_if = [dataclasses.replace(good, helped=False)]
    assert advisor.rule_what_if(RunResult(suite={}, environment={}, results=[base])) == []
    assert advisor.best_what_if(base) is None


def test_larger_batch_is_compared_per_sample_and_a_failed_rerun_is_not_a_speedup():
    base = waiting(0.6, samples=[0.1] * 6, batch_size=8)
    double = waiting(0.6, samples=[0.2] * 6, batch_size=16)  # twice the step for twice the batch: no gain
    bigger = whatif_changes.applicable_changes(case(), 8)[-1]
    entry = whatif_changes.what_if_entry(bigger, base, double)
    assert entry.speedup == pytest.approx(1.0) and not entry.helped and entry.batch_size == 16
    failed = waiting(None, samples=(), status="failed")
    failed.error = ErrorInfo(type="ValueError", message="boom")
    entry = whatif_changes.what_if_entry(bigger, base, failed)
    assert entry.speedup is None and not entry.helped and "boom" in entry.error


def test_baseline_pools_the_runs_before_and_after_the_what_ifs():
    before = waiting(0.5, samples=[0.10] * 6, waits=[0.05] * 6)
    after = waiting(0.7, samples=[0.20] * 6, waits=[0.14] * 6)
    pooled = whatif.pooled_baseline(before, after)
    assert pooled.samples == [0.10] * 6 + [0.20] * 6 and before.samples == [0.10] * 6
    assert pooled.input_wait_fraction == pytest.approx(0.19 * 6 / 1.8)
    assert whatif.baseline_note(before, after).drift == pytest.approx(1.0)
    assert whatif.pooled_baseline(before, waiting(None, samples=(), status="failed")) is before


def test_what_ifs_stop_before_the_case_timeout_and_say_so():
    assert not whatif.Budget(limit_s=0.0, estimate_s=1.0).allows_another()  # this process is older than 0 s
    assert whatif.Budget(limit_s=1e9, estimate_s=1.0).allows_another()
    base = waiting(0.6, samples=[0.1] * 6)
    base.what_if = [whatif.skipped_entry(whatif_changes.applicable_changes(case(), 8)[0], timeout_s=60)]
    run = RunResult(suite={"name": "t"}, environment={}, results=[base])
    assert advisor.rule_what_if(run) == [] and what_if_rows(run)[0]["helped"] == "skipped (timeout_s)"
    assert "60 s" in base.what_if[0].skipped


def test_tables_list_each_what_if_with_its_speedup():
    base = waiting(0.6, samples=[0.1] * 6)
    prefetch = whatif_changes.applicable_changes(case(), 8)[0]
    base.what_if = [whatif_changes.what_if_entry(prefetch, base, waiting(0.05, samples=[0.04] * 6))]
    run = RunResult(suite={"name": "t"}, environment={}, results=[base])
    rows = what_if_rows(run)
    assert (
        rows[0]["change"] == "prefetch(AUTOTUNE)"
        and rows[0]["speed-up"] == "2.50x"
        and rows[0]["helped"] == "yes"
    )
    assert rows[0]["input wait"] == "60% → 5%"
    assert "## What-if runs" in render_markdown(run) and "what-if runs" in render_table(run)


# --- a real run ---------------------------------------------------------------------------------------------

SUITE = """
name: whatif-test
defaults:
  modes: [function]
  model: {model}
  params: {{step_ms: 30, features: 8, classes: 4}}
  labels: {{classes: 4}}
  task: infer               # forward only: the cheapest step to build and trace, again for every what-if
  batch_size: 8
  warmup_steps: 2
  steps: 3
  repeats: 2
  processes: 1
  profile: false
cases:
  # 8 elements × 8 ms of map per step against a 30 ms step: prefetch overlaps the two, a parallel map halves
  # the map on 2 cores; both hold on a loaded machine because the costs are sleeps.
  # cache: true costs nothing here (these few steps never finish the first pass over 512 elements, so nothing
  # is read from the cache) and leaves out the cache() what-if: one re-run fewer.
  - name: slow
    input: {{shape: [8], pipeline: {{map_cost_ms: 8, num_elements: 512, cache: true}}}}
  # No map cost and a prefetch: the step never waits for data.
  - name: fast
    input: {{shape: [8], pipeline: {{prefetch: autotune}}}}
"""


@pytest.fixture(scope="module")
def what_if_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whatif")
    suite = tmp / "whatif.yaml"
    suite.write_text(
        textwrap.dedent(SUITE.format(model=ROOT / "suites/examples/pipelines.py:fixed_step_model"))
    )
    out = tmp / "out"
    proc = run_tfperf("run", str(suite), "--out", str(out), "--quiet", "--what-if")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    return {r["case"]: r for r in data["results"]}, (out / "report.md").read_text(), out


@pytest.mark.workers
def test_prefetch_and_parallel_map_each_reduce_the_step_of_a_slow_pipeline(what_if_run):
    slow = what_if_run[0]["slow"]
    assert slow["status"] == "ok" and slow["input_wait_fraction"] > thresholds.INPUT_BOUND_FRACTION
    entries = {w["change"]: w for w in slow["what_if"]}
    for name in ("prefetch(AUTOTUNE)", "map num_parallel_calls=AUTOTUNE"):
        w = entries[name]
        assert w.get("error") is None, w
        assert w["median_s"] < w["baseline_median_s"], w
    # The baseline: the job's own pass before the what-ifs, and the unchanged job once more after them.
    baseline = slow["what_if_baseline"]
    assert baseline["median_s_before"] == slow["step_time_s"]["median"] and baseline["samples_after"] == 6
    combined = next(w for w in slow["what_if"] if w["combined"])
    assert combined["input_wait_fraction"] < slow["input_wait_fraction"]
    # Every suggestion backed by a what-if names a change that helped; a change that did not is not suggested.
    tf_data_codes = {"prefetch", "parallelize-map", "cache-dataset", "parallel-interleave"}
    helped = {advisor.what_if_code(w["change"]) for w in slow["what_if"] if w["helped"]} & tf_data_codes
    suggested = {s["code"] for s in slow["suggestions"]} & tf_data_codes
    assert suggested == helped and {"prefetch", "parallelize-map"} <= {
        advisor.what_if_code(w["change"]) for w in slow["what_if"]
    }
    assert "input-bound" in {s["code"] for s in slow["suggestions"]}


@pytest.mark.workers
def test_a_job_that_is_not_input_bound_gets_no_what_if_and_no_input_suggestion(what_if_run):
    fast = what_if_run[0]["fast"]
    assert fast["status"] == "ok" and fast["input_wait_fraction"] < thresholds.INPUT_BOUND_FRACTION
    assert fast["what_if"] is None
    assert not {s["code"] for s in fast["suggestions"]} & {
        "input-bound",
        "prefetch",
        "parallelize-map",
        "cache-dataset",
        "parallel-interleave",
    }


@pytest.mark.workers
def test_report_lists_the_what_if_runs(what_if_run):
    report = what_if_run[1]
    assert (
        "## What-if runs" in report and "prefetch(AUTOTUNE)" in report and "| slow [function bs=8]" in report
    )
    assert "fast [function" not in report.split("## What-if runs")[1].split("##")[0]


@pytest.mark.workers
def test_what_if_reruns_write_nothing_into_the_jobs_tensorboard_run(what_if_run):
    """The job's TensorBoard run holds the job's own summaries only: one event file whose step-time series is
    the job's samples. The what-if re-runs (five here: two changes, their combination, a larger batch, the
    unchanged job) used to add theirs to the same run, under the same tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    results, _, out = what_if_run
    slow = results["slow"]
    assert len(slow["what_if"]) >= 3
    run = out / "tensorboard" / "slow-function"
    events = sorted(run.glob("events.out.tfevents.*"))
    assert len(events) == 1, [e.name for e in events]
    acc = EventAccumulator(str(run), size_guidance={"tensors": 0})  # 0: keep every event
    acc.Reload()

    def values(tag: str) -> list[float]:
        return [float(make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]

    assert values("tfperf/step_time_ms") == pytest.approx([1e3 * s for s in slow["samples"]])
    assert values("tfperf/median_step_time_ms") == pytest.approx([1e3 * slow["step_time_s"]["median"]])
    # Nor a run of their own under another name: the run folder lists the two jobs only.
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["fast-function", "slow-function"]
