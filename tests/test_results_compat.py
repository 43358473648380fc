"""results.json files written by earlier versions of tfperf still read, round-trip, render, export and
compare: the file format is public.

- `results_v1_before_layout.json`: written before the package was laid out by stage (schema_version 1, `tfperf
  run suites/smoke.yaml` on the 2-core CI machine).
- `results_v1_before_records.json` and `serve_bench_v1_before_records.json`: written by tfperf at commit
  15acd75, before the keys tfperf itself wrote into a result's `extra` moved to typed fields. The first is one
  `tfperf run` of tests/data/before_records/extra_keys.yaml (every mode, task: fit, what-ifs, a stateful step
  under tune's output check, retraces, a later worker process that dies, mirrored and multi-worker
  tf.distribute with a cluster restarted once and a worker that fails); the second one `tfperf serve-bench URL
  --model flaky --signature serving_default --qps 50 --requests 40 --p99-bound-ms 1000 --concurrency 4
  --instances FILE` (two instances a request) against tests/test_serve_bench.py's stand-in server, its metrics
  page read. Both are as tfperf wrote them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ROOT, run_tfperf

from tfperf.results import SCHEMA_VERSION, load_results
from tfperf.results.compat import DEPLOYMENT_KEYS, DISTRIBUTED_KEYS, MOVES, SERVE_MOVES, SETUP_KEYS
from tfperf.results.model import Result

DATA = ROOT / "tests" / "data"
OLD = DATA / "results_v1_before_layout.json"
BEFORE_RECORDS = DATA / "results_v1_before_records.json"
SERVE_BEFORE_RECORDS = DATA / "serve_bench_v1_before_records.json"
OLD_FILES = [OLD, BEFORE_RECORDS, SERVE_BEFORE_RECORDS]


def test_old_results_load_and_round_trip(tmp_path):
    run = load_results(OLD)
    raw = json.loads(OLD.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 1
    assert len(run.results) == len(raw["results"]) == 9
    # Every field the old file recorded survives a load and a write, including the derived ones.
    again = run.to_json()
    for old, new in zip(raw["results"], again["results"]):
        assert set(old) <= set(new), set(old) - set(new)
        for key in (
            "case",
            "mode",
            "status",
            "samples",
            "first_call_s",
            "step_time_s",
            "throughput",
            "profile",
        ):
            assert new[key] == old[key], key


@pytest.mark.cli
def test_report_reads_old_results(tmp_path):
    table = run_tfperf("report", str(OLD))
    assert table.returncode == 0, table.stderr
    for case in ("mlp", "small_cnn-infer", "matmul-chain"):
        assert case in table.stdout
    html = tmp_path / "report.html"
    proc = run_tfperf("report", str(OLD), "--format", "html", "--output", str(html))
    assert proc.returncode == 0, proc.stderr
    page = html.read_text()
    assert "matmul-chain" in page and "Traceback" not in page
    md = run_tfperf("report", str(OLD), "--format", "markdown")
    assert md.returncode == 0 and "| mlp" in md.stdout, md.stderr


@pytest.mark.cli
def test_compare_reads_old_results_against_themselves():
    proc = run_tfperf("compare", str(OLD), str(OLD), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    cmp = json.loads(proc.stdout)
    verdicts = [row["verdict"] for row in cmp["rows"]]
    assert len(verdicts) == 9 and set(verdicts) == {"unchanged"}


# --- the keys tfperf wrote into `extra` before they had fields of their own ---------------------------------


def holds(new: Any, old: Any) -> bool:
    """`new` (as written now) says what `old` said: equal, except that a record now writes every field of its
    own, null where the old object had no key."""
    if isinstance(old, dict) and isinstance(new, dict):
        return all(k in new and holds(new[k], v) for k, v in old.items()) and all(
            new[k] is None for k in new.keys() - old.keys()
        )
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(holds(n, o) for n, o in zip(new, old))
    return new == old


def moved(entry: dict, key: str) -> tuple[str, str | None]:
    return (SERVE_MOVES if entry["mode"] == "serve" and key in SERVE_MOVES else MOVES)[key]


def field_value(written: dict, field: str, inner: str | None) -> Any:
    return written[field] if inner is None else (written[field] or {}).get(inner, "missing")


# Every key tfperf wrote into `extra` that the runs of the fixtures produced: the fixtures are only worth
# keeping while they hold them.
IN_THE_RUN = (
    set(SETUP_KEYS)
    | set(DEPLOYMENT_KEYS)
    | set(DISTRIBUTED_KEYS) - {"replicas_diverged", "also_failed_workers", "allreduce_share"}
    | {"trace_calls", "first_use_traces", "trace_signature", "first_step_output", "output_fingerprint"}
    | {"rss_growth_bytes", "autotune", "what_if_baseline", "process_errors"}
)


def test_the_fixtures_hold_the_keys_tfperf_wrote_into_extra():
    run_keys = {k for r in json.loads(BEFORE_RECORDS.read_text())["results"] for k in r["extra"]}
    assert run_keys == IN_THE_RUN
    (serve,) = json.loads(SERVE_BEFORE_RECORDS.read_text())["results"]
    assert set(serve["extra"]) == set(SERVE_MOVES) and serve["extra"]["server"]["status"] == "read"
    assert serve["extra"]["open_loop"]["verdict"] == "INVALID"


@pytest.mark.parametrize("path", [BEFORE_RECORDS, SERVE_BEFORE_RECORDS], ids=lambda p: p.name)
def test_every_old_extra_key_lands_in_its_typed_field_and_leaves_extra(path):
    raw = json.loads(path.read_text())
    run = load_results(path)
    assert len(run.results) == len(raw["results"])
    for entry, result in zip(raw["results"], run.results):
        written = json.loads(json.dumps(result.to_json()))
        assert written["extra"] == {}, (entry["case"], written["extra"])  # nothing but what tfperf wrote
        for key, value in entry["extra"].items():
            field, inner = moved(entry, key)
            assert holds(field_value(written, field, inner), value), (entry["case"], key)
        # The rest of the entry is as it was.
        assert {k: v for k, v in written.items() if k in entry and k != "extra"} == {
            k: v for k, v in entry.items() if k != "extra"
        }


def test_readers_find_the_old_keys_as_typed_attributes():
    by = {(r.case, r.mode): r for r in load_results(BEFORE_RECORDS).results}
    assert by[("mlp-infer", "xla")].setup.keras.startswith("keras 3")
    assert by[("mlp-infer", "tflite-int8")].deployment.input_dtype == "int8"
    assert by[("two-outputs", "savedmodel")].deployment.outputs_ignored
    assert by[("two-inputs", "function")].setup.model_inputs["kind"] == "dict"
    assert by[("saved", "function")].setup.saved_model["signature"] == "serving_default"
    assert by[("mlp-tuned", "function")].output_check.fingerprint.values
    assert by[("mlp-tuned", "function")].setup.tf_config_applied["mixed_precision"] == "mixed_float16"
    assert by[("stateful-step", "function")].output_check.first_step.state_variables > 0
    assert (
        by[("mlp-fit", "xla")].setup.fit.jit_compile and by[("mlp-fit", "xla")].setup.steps_per_execution == 2
    )
    assert by[("naive-pipeline", "function")].what_if_baseline.samples_after
    assert by[("first-use", "function")].tracing.first_use_traces == 1
    assert by[("python-scalar", "function")].tracing.signature["function"] == "scaled"
    (failure,) = by[("dies-later", "eager")].process_errors
    assert failure.process == 1 and failure.error.type == "WorkerCrash"
    mirrored = by[("mirrored", "function")].distributed
    assert (
        mirrored.strategy == "mirrored"
        and mirrored.baseline.replicas == 1
        and len(mirrored.probe_losses) == 2
    )
    multi = by[("multi-worker", "function")].distributed
    assert multi.losses_identical and [w.index for w in multi.per_worker] == [0, 1]
    assert "SIGABRT" in multi.cluster_restarts[0].message
    failed = by[("worker-fails", "function")].distributed
    assert failed.failed_worker == 1 and len(failed.worker_pids) == 2
    (serve,) = load_results(SERVE_BEFORE_RECORDS).results
    assert serve.serve.requests_failed == 10 and serve.serve.server.request_latency_s.count == 30
    assert serve.serve.open_loop.verdict == "INVALID" and serve.serve.signature == "serving_default"


def test_keys_no_small_run_writes_move_too_and_what_is_not_tfperfs_stays_in_extra():
    """Built by hand: the keys the fixtures' runs could not produce (a failed read-out, replicas that
    diverged, a worker that failed after another, an early tfperf's all-reduce share) beside an extension's
    key and tune's identity, which stay in `extra`."""
    entry = {
        "case": "c",
        "mode": "function",
        "device": "cpu",
        "task": "train",
        "batch_size": 8,
        "extra": {
            "readout_errors": {"graph": "ValueError: no graph"},
            "replicas_diverged": True,
            "also_failed_workers": [0],
            "allreduce_share": 0.12,
            "tune": {"config": "threads-1x1", "case": "c"},
            "my_extension": {"value": 1},
        },
    }
    r = Result.from_json(entry)
    assert r.readout_errors.graph == "ValueError: no graph" and r.readout_errors.retraces is None
    assert r.distributed.replicas_diverged and r.distributed.also_failed_workers == [0]
    assert r.distributed.allreduce_share == 0.12
    assert r.extra == {"tune": {"config": "threads-1x1", "case": "c"}, "my_extension": {"value": 1}}
    # A serve result's `signature` is the load test's, not a SavedModel's.
    serve = Result.from_json({**entry, "mode": "serve", "extra": {"signature": "serving_default"}})
    assert serve.serve.signature == "serving_default" and serve.deployment is None


def test_an_entry_written_after_the_move_keeps_its_extra_as_it_is():
    """A file with the typed fields was written by this tfperf: a key its `extra` holds is an extension's,
    even when tfperf once wrote a key of that name."""
    written = Result("c", "function", "cpu", "train", 8, samples=[0.1], extra={"keras": "mine"}).to_json()
    again = Result.from_json(json.loads(json.dumps(written)))
    assert again.extra == {"keras": "mine"} and again.setup is None


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.name)
def test_an_old_file_round_trips_once_loaded(path, tmp_path):
    first = json.loads(json.dumps(load_results(path).to_json()))
    out = tmp_path / "results.json"
    out.write_text(json.dumps(first))
    assert json.loads(json.dumps(load_results(out).to_json())) == first


@pytest.mark.cli
@pytest.mark.parametrize("path", [BEFORE_RECORDS, SERVE_BEFORE_RECORDS], ids=lambda p: p.name)
def test_report_renders_a_file_written_before_the_records_in_every_format(path, tmp_path):
    for fmt in ("table", "markdown", "json", "html"):
        out = tmp_path / f"report.{fmt}"
        proc = run_tfperf("report", str(path), "--format", fmt, "--output", str(out))
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (fmt, proc.stderr)
        text = out.read_text()
        assert text.strip(), fmt
        if path == SERVE_BEFORE_RECORDS and fmt in ("table", "markdown"):
            assert "flaky" in text and "10.14" in text  # the client's p99 from the old serve figures
    page = (tmp_path / "report.html").read_text()
    assert "Other measurements" in page
    if path == BEFORE_RECORDS:
        assert "Scaling" in page and "mirrored" in page and "tflite-int8" in page
    else:
        assert "server request (histogram)" in page and "INVALID at p99 bound" in page


@pytest.mark.cli
@pytest.mark.parametrize("path", [BEFORE_RECORDS, SERVE_BEFORE_RECORDS], ids=lambda p: p.name)
def test_export_and_compare_read_a_file_written_before_the_records(path, tmp_path):
    for fmt in ("pytest-benchmark", "prometheus"):
        proc = run_tfperf("export", str(path), "--format", fmt, "--output", str(tmp_path / fmt))
        assert proc.returncode == 0, (fmt, proc.stderr)
    prom = (tmp_path / "prometheus").read_text()
    if path == SERVE_BEFORE_RECORDS:  # the old serve figures: 10 failed requests, an INVALID open loop
        failed = [line for line in prom.splitlines() if 'outcome="failed"' in line]
        assert len(failed) == 1 and failed[0].endswith(" 10.0")
        assert any(
            line.startswith("tfperf_open_loop_valid{") and line.endswith(" 0.0") for line in prom.splitlines()
        )
    proc = run_tfperf("compare", str(path), str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert len(rows) == len(json.loads(path.read_text())["results"])
