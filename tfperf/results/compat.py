"""Reading results.json files written by earlier versions of tfperf: what moved is put where it is now, on
load, so every reader sees one layout. Saving such a file writes the current layout. This is the one place
that knows the old layouts:

- `tfperf tune` named a configuration's results `<case>+<config>`, described in `extra.tune`: now a variant;
- a result's `extra` held, beside what extensions wrote, the keys tfperf wrote itself (what the job ran with,
  the tracing read-outs, tune's output check, a distributed job's replicas and workers, a deployment's
  artefact, a serve-bench run's figures): now fields of their own (job_records.py, serve_records.py).
"""

from __future__ import annotations

from typing import Any

# Old `extra` key -> (field, key in the field's record; None: the field itself). The serve-bench keys are read
# from a serve result only: `signature` and `wall_s` mean something else there.
SERVE_KEYS = (
    "url",
    "endpoint",
    "signature",
    "request_format",
    "concurrency",
    "requests_sent",
    "requests_ok",
    "requests_failed",
    "errors_by_status",
    "connection_errors",
    "error_examples",
    "wall_s",
    "requests_per_s",
    "instances_per_s",
    "latency_s",
    "stopped_by",
    "request_cap",
    "duration_cap_s",
    "timeout_s",
    "warmup",
    "load",
    "open_loop",
    "server",
)
SETUP_KEYS = (
    "keras",
    "input_source",
    "input_pipeline",
    "model_inputs",
    "saved_model",
    "placed_on",
    "model_compute_dtype",
    "dtype_policy",
    "loss_scale_optimizer",
    "tf_config",
    "tf_config_applied",
    "steps_per_execution",
    "fit",
)
DISTRIBUTED_KEYS = (
    "strategy",
    "devices",
    "workers",
    "worker_index",
    "pid",
    "replica_devices",
    "cuda_visible_devices",
    "final_loss",
    "probe_losses",
    "samples_per_s",
    "synced_replicas",
    "replicas_diverged",
    "baseline",
    "per_worker",
    "losses_identical",
    "worker_pids",
    "failed_worker",
    "also_failed_workers",
    "cluster_restarts",
    "allreduce_share",
)
DEPLOYMENT_KEYS = (
    "artefact",
    "export_time_s",
    "convert_time_s",
    "num_threads",
    "interpreter",
    "runs_on",
    "signature",
    "input_name",
    "output_name",
    "outputs_ignored",
    "input_dtype",
    "input_quantization",
    "output_dtype",
    "output_quantization",
)
MOVES: dict[str, tuple[str, str | None]] = {
    **{k: ("setup", k) for k in SETUP_KEYS},
    "trace_calls": ("tracing", "calls"),
    "first_use_traces": ("tracing", "first_use_traces"),
    "trace_signature": ("tracing", "signature"),
    "first_step_output": ("output_check", "first_step"),
    "output_fingerprint": ("output_check", "fingerprint"),
    "readout_errors": ("readout_errors", None),
    "rss_growth_bytes": ("rss_growth_bytes", None),
    "autotune": ("autotune", None),
    "what_if_baseline": ("what_if_baseline", None),
    "process_errors": ("process_errors", None),
    **{k: ("distributed", k) for k in DISTRIBUTED_KEYS},
    **{k: ("deployment", k) for k in DEPLOYMENT_KEYS},
}
SERVE_MOVES: dict[str, tuple[str, str | None]] = {k: ("serve", k) for k in SERVE_KEYS}
# The fields the old keys moved to: a result entry that has any of them was written after the move.
FIELDS = frozenset(field for field, _ in [*MOVES.values(), *SERVE_MOVES.values()])


def upgrade_result(d: dict[str, Any]) -> dict[str, Any]:
    """A result entry in the current layout (a copy when anything moved)."""
    return _own_keys(_tune_variant(d))


def _tune_variant(d: dict[str, Any]) -> dict[str, Any]:
    """`tfperf tune` named a configuration's results `<case>+<config>` and described the configuration in
    `extra.tune` ({case, config, group, settings, pipeline, label}); now the case keeps its name, the
    configuration is the job's `variant`, and what it changed is `tune`."""
    extra = d.get("extra")
    tune = extra.get("tune") if isinstance(extra, dict) else None
    if "variant" in d or not isinstance(tune, dict):
        return d
    case, config = tune.get("case"), tune.get("config")
    if not isinstance(case, str) or not isinstance(config, str) or d.get("case") != f"{case}+{config}":
        return d
    rest = {k: v for k, v in tune.items() if k not in ("case", "config")}
    return {
        **d,
        "case": case,
        "variant": config,
        "tune": rest,
        "extra": {k: v for k, v in extra.items() if k != "tune"},
    }


def _own_keys(d: dict[str, Any]) -> dict[str, Any]:
    """A result entry with the old `extra` keys moved to their fields (a new dict; `d` is not changed). An
    entry written after the move is returned as it is: a key its `extra` holds then is an extension's."""
    extra = d.get("extra")
    if not isinstance(extra, dict) or not extra or FIELDS & set(d):
        return d
    moves = {**MOVES, **SERVE_MOVES} if d.get("mode") == "serve" else MOVES
    out = {**d, "extra": {k: v for k, v in extra.items() if k not in moves}}
    for key, value in extra.items():
        if key not in moves:
            continue
        field, inner = moves[key]
        if inner is None:
            out[field] = value
        else:
            out[field] = {**(out.get(field) or {}), inner: value}
    return out
