"""`tfperf serve-bench`: load-test an endpoint that speaks TF Serving's REST predict API.

    POST {URL}/v1/models/NAME[/versions/V]:predict   {"signature_name": ..., "instances": [...]}  (row format)
                                                      {"signature_name": ..., "inputs": [...]}     (columnar)

Closed loop (the default): N client threads (one keep-alive connection each, as real clients hold) each send
their next request when the last one answered. Open loop (`qps`): requests arrive as a Poisson process at that
rate whatever the server does (tfperf.deploy.open_loop). Either way requests go until a request cap or a
time cap is reached: both caps always apply, so a run ends by itself. Every outcome is counted, none is fatal:
HTTP errors by status, connection failures by kind (ConnectionRefusedError, TimeoutError, RemoteDisconnected
...), a 200 whose body has no predictions as `bad_response`. Latencies of successful requests are the samples;
the run is written as a results.json with one Result (mode "serve", its figures in `Result.serve`), so `tfperf
compare` and `tfperf report` work on it.

Here: what to send (instances drawn for a suite case's input or the endpoint's signature, or read from a file)
and the run's result; the run's configuration and its requests are tfperf.deploy.serve_config's, the load test
tfperf.deploy.serve_load's.

The server's own Prometheus page (TF Serving's request, runtime and batching histograms) is read after the
warm-up and after the timed load, and the deltas go into `serve.server` (tfperf.deploy.server_metrics).

No TensorFlow here: the client is http.client, the instances numpy.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import numpy as np

from tfperf import stats, units
from tfperf.deploy import open_loop, server_metrics
from tfperf.deploy.serve_config import (
    ServeBenchConfig,
    ServeBenchError,
    http_get,
    metrics_url_path,
    predict_path,
)
from tfperf.deploy.serve_load import BenchOutcome, run_bench
from tfperf.host.environment import host_environment
from tfperf.results.model import Result, RunResult, now_iso
from tfperf.results.records import ErrorInfo, Timing
from tfperf.results.serve_records import LatencySummary, ServeBench, ServerMetrics
from tfperf.version import __version__

# --- what to send -------------------------------------------------------------------------------------------


def synthetic_instances(
    shape: tuple[int, ...], dtype: str, batch: int, maxval: int | None = None, seed: int = 0
) -> list:
    """`batch` examples of the given per-example shape, drawn like the harness's synthetic inputs, as JSON
    lists."""
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    full = (batch, *shape)
    if np.issubdtype(np_dtype, np.integer):
        data = rng.integers(0, maxval or 2, size=full).astype(np_dtype)
    elif np_dtype == np.bool_:
        data = rng.integers(0, 2, size=full).astype(bool)
    else:
        data = rng.standard_normal(size=full).astype(np_dtype)
    return data.tolist()


def instances_from_suite(ref: str, batch: int, seed: int = 0) -> list:
    """--input-from suite.yaml:case: the case's input spec (or its zoo model's default input)."""
    from tfperf.suite.loader import load_suite

    path, sep, case_name = ref.rpartition(":")
    if not sep or not path or not case_name:
        raise ServeBenchError(f"--input-from {ref!r}: give SUITE.yaml:CASE")
    suite = load_suite(Path(path))
    case = next((c for c in suite.cases if c.name == case_name), None)
    if case is None:
        names = ", ".join(c.name for c in suite.cases)
        raise ServeBenchError(f"--input-from {ref}: no case {case_name!r} in {path} (cases: {names})")
    inp = case.input
    if case.model and case.model.startswith("zoo:"):
        from tfperf.zoo import (
            MODELS,
            resolve_input,
        )  # the input the zoo model's params imply, when the case gives none

        entry = MODELS.get(case.model.removeprefix("zoo:"))
        inp = resolve_input(entry, inp, case.params) if entry else inp
    if inp is None:
        raise ServeBenchError(
            f"--input-from {ref}: the case has no input: {{shape: [...]}} to draw instances from"
        )
    return synthetic_instances(tuple(inp.shape), inp.dtype, batch, inp.maxval, seed)


def instances_from_file(path: Path) -> list:
    """A JSON file holding a list of instances, or a whole request body with "instances"/"inputs"."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServeBenchError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ServeBenchError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, dict):
        data = data.get("instances", data.get("inputs"))
    if not isinstance(data, list) or not data:
        raise ServeBenchError(f'{path}: expected a non-empty list of instances (or a body with "instances")')
    return data


_TF_DTYPES = {
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_HALF": "float16",
    "DT_INT32": "int32",
    "DT_INT64": "int64",
    "DT_INT8": "int8",
    "DT_UINT8": "uint8",
    "DT_BOOL": "bool",
}


def instances_from_metadata(config: ServeBenchConfig, batch: int, seed: int = 0) -> list:
    """Ask the endpoint (GET .../metadata) for the signature's input shape and dtype, and draw instances for
    it."""
    path = predict_path(config).removesuffix(":predict") + "/metadata"
    try:
        status, body = http_get(config, path)
    except (OSError, http.client.HTTPException) as exc:
        raise ServeBenchError(
            f"{config.url}{path}: {type(exc).__name__}: {exc}; give --input-from SUITE.yaml:CASE "
            "or --instances FILE.json"
        ) from None
    if status != 200:
        raise ServeBenchError(
            f"{config.url}{path}: HTTP {status}; give --input-from SUITE.yaml:CASE or --instances FILE.json"
        )
    try:
        sigs = json.loads(body)["metadata"]["signature_def"]["signature_def"]
        sig = sigs[config.signature or "serving_default"]
        inputs = sig["inputs"]
        if len(inputs) != 1:
            raise ServeBenchError(f"signature has {len(inputs)} inputs; give --instances FILE.json")
        (spec,) = inputs.values()
        dims = [int(d.get("size", -1)) for d in spec["tensor_shape"].get("dim", [])]
        dtype = _TF_DTYPES[spec["dtype"]]
    except ServeBenchError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise ServeBenchError(
            f"{config.url}{path}: metadata without a usable input signature ({exc}); give "
            "--input-from SUITE.yaml:CASE or --instances FILE.json"
        ) from None
    shape = tuple(dims[1:])  # the first dimension is the batch
    if any(d < 0 for d in shape):
        raise ServeBenchError(f"input shape {dims} has unknown dimensions; give --instances FILE.json")
    return synthetic_instances(shape, dtype, batch, seed=seed)


# --- results ------------------------------------------------------------------------------------------------


def latency_summary(latencies_s: list[float]) -> LatencySummary | None:
    if not latencies_s:
        return None
    s = stats.summarize(latencies_s)
    return LatencySummary(
        p50=s["median"], p90=s["p90"], p99=s["p99"], max=s["max"], mean=s["mean"], min=s["min"]
    )


def to_result(
    config: ServeBenchConfig, outcome: BenchOutcome, batch: int, server: ServerMetrics | None = None
) -> Result:
    """One Result, mode "serve": samples are request latencies (from the due time in the open loop); the batch
    size is instances per request; `server` is what the server's metrics page said (server_metrics)."""
    max_requests, duration_s = config.caps()
    case = config.model + (f"@v{config.version}" if config.version else "")
    result = Result(
        case=case,
        mode="serve",
        device="endpoint",
        task="infer",
        batch_size=batch,
        model=predict_path(config),
        samples=list(outcome.latencies_s),
        first_call_s=outcome.warmup.first_s,
    )
    result.timing = Timing(
        method="per_request",
        warmup_steps=config.warmup_requests,
        steps=outcome.sent,
        repeats=1,
        sync="http response read",
    )
    rate = outcome.ok / outcome.wall_s if outcome.wall_s > 0 else None
    result.serve = ServeBench(
        url=config.url,
        endpoint=predict_path(config),
        signature=config.signature,
        request_format=config.request_format,
        concurrency=config.concurrency,
        requests_sent=outcome.sent,
        requests_ok=outcome.ok,
        requests_failed=outcome.failed,
        errors_by_status=dict(outcome.errors_by_status),
        connection_errors=dict(outcome.connection_errors),
        error_examples=outcome.error_examples,
        wall_s=outcome.wall_s,
        requests_per_s=rate,
        instances_per_s=rate * batch if rate is not None else None,
        latency_s=latency_summary(outcome.latencies_s),
        stopped_by=outcome.stopped_by,
        request_cap=max_requests,
        duration_cap_s=duration_s,
        timeout_s=config.timeout_s,
        warmup=outcome.warmup,
        # "closed": each client sends when its last request answered; "open": Poisson arrivals (open_loop).
        load="open" if outcome.open_loop else "closed",
        open_loop=outcome.open_loop,
        server=server,
    )
    result.wall_s = outcome.wall_s
    if outcome.ok == 0:
        counts = {
            **{f"HTTP {k}": v for k, v in outcome.errors_by_status.items()},
            **outcome.connection_errors,
        }
        worst = max(counts, key=counts.get) if counts else "no request sent"
        first = next(iter(outcome.error_examples.values()), [None])
        result.status = "failed"
        result.error = ErrorInfo(
            type="NoSuccessfulRequest",
            message=f"0 of {outcome.sent} requests succeeded; most common: {worst}"
            + (f" ({first[0]})" if first and first[0] else ""),
            hint="check the URL, the model name and the input shape (GET "
            f"{predict_path(config).removesuffix(':predict')}/metadata shows the signature)",
        )
    return result


def to_run(
    config: ServeBenchConfig,
    result: Result,
    started_at: str,
    finished_at: str,
    command: list[str] | None = None,
) -> RunResult:
    return RunResult(
        suite={"name": f"serve-bench-{config.model}", "path": config.url, "sha256": None},
        environment=host_environment(),
        results=[result],
        started_at=started_at,
        finished_at=finished_at,
        tfperf_version=__version__,
        command=command,
    )


def serve_bench(config: ServeBenchConfig, instances: list, command: list[str] | None = None) -> RunResult:
    """Run the load test and return it as a RunResult (write it with tfperf.report.outputs.finish_run)."""
    started = now_iso()
    pages: list[server_metrics.Page] = []

    def read_metrics() -> None:
        pages.append(server_metrics.read_page(lambda path: http_get(config, path), metrics_url_path(config)))

    # The page is read after the warm-up and right after the timed load, so its deltas are the timed
    # requests'.
    outcome = run_bench(config, instances, before_timed=read_metrics if config.metrics_path else None)
    server = None
    if config.metrics_path:
        read_metrics()
        server = server_metrics.server_deltas(pages[0], pages[-1], config.model, config.metrics_path)
    finished = now_iso()
    return to_run(config, to_result(config, outcome, len(instances), server), started, finished, command)


def bench_exit_code(run: RunResult) -> int:
    """The run's exit code (1 for a failed result), and 1 for an open-loop run judged INVALID against its p99
    bound, so a script can gate on the verdict."""
    invalid = any(
        r.serve and r.serve.open_loop and r.serve.open_loop.verdict == "INVALID" for r in run.results
    )
    return run.exit_code or (1 if invalid else 0)


def render_summary(result: Result) -> str:
    """The terminal summary: throughput, latency percentiles, errors by status and kind."""
    e = result.serve or ServeBench()
    lat = e.latency_s
    lines = [
        f"serve-bench {e.endpoint} at {e.url}: concurrency {e.concurrency}, "
        f"{result.batch_size} instance(s) per request, stopped by the {e.stopped_by} cap",
        f"requests     {e.requests_sent} sent, {e.requests_ok} ok, {e.requests_failed} failed "
        f"in {units.seconds(e.wall_s)}",
    ]
    if e.requests_per_s is not None:
        lines.append(
            f"throughput   {units.number(e.requests_per_s)} requests/s, "
            f"{units.number(e.instances_per_s)} instances/s"
        )
    if lat:
        lines.append(
            "latency      "
            + ", ".join(f"{k} {units.seconds(getattr(lat, k))}" for k in ("p50", "p90", "p99", "max"))
        )
    examples = e.error_examples or {}
    for status, n in sorted((e.errors_by_status or {}).items()):
        example = (examples.get(status) or [""])[0]
        lines.append(f"HTTP {status:<8} {n}" + (f"  e.g. {example}" if example else ""))
    for kind, n in sorted((e.connection_errors or {}).items()):
        example = (examples.get(kind) or [""])[0]
        lines.append(f"{kind:<12} {n}" + (f"  e.g. {example}" if example else ""))
    lines += open_loop.summary_lines(e.open_loop)
    lines += server_metrics.summary_lines(e.server)
    if result.error:
        lines.append(f"FAILED: {result.error.message}")
    return "\n".join(lines)
