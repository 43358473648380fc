"""Inputs read from a model's own structure (single, list, dict), the suite's overrides by name, saved-model
references, a user's stateful training step checked from the same state, and the bad input around them.
Real TensorFlow and Keras, tiny models, in one process (no workers)."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from tfperf.errors import SuiteError
from tfperf.host import noise
from tfperf.measure import harness
from tfperf.measure.model_inputs import ModelInputError, inputs_from_model, labels_from_model
from tfperf.measure.timing import WARMUP_MAX_EXTRA_STEPS, WARMUP_MIN_S
from tfperf.suite.loader import load_suite
from tfperf.suite.references import resolve_reference
from tfperf.suite.spec import CaseSpec, InputSpec

pytestmark = pytest.mark.tensorflow

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "suites" / "examples"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


# --- the suite: input by name, saved-model references (no TensorFlow) ---------------------------------------


def test_input_by_name_is_parsed_and_a_misspelt_key_names_its_line(tmp_path):
    ok = write(
        tmp_path,
        "name: s\ncases:\n  - name: a\n    model: zoo:mlp\n"
        "    input: {token_ids: {shape: [8], dtype: int32, maxval: 30}, mask: {shape: [8]}}\n",
    )
    (case,) = load_suite(ok).cases
    assert case.input is None and case.input_by_name["token_ids"].maxval == 30
    assert case.input_by_name["mask"].dtype is None  # not given: the model's dtype
    from tfperf.suite.spec import CaseSpec

    assert CaseSpec.from_json(case.to_json()) == case  # travels to the worker intact
    bad = write(
        tmp_path,
        "name: s\ncases:\n  - name: a\n    model: zoo:mlp\n    input:\n"
        "      token_ids: {shape: [8], dtyp: int32}\n",
    )
    with pytest.raises(SuiteError) as err:
        load_suite(bad)
    assert "s.yaml:6: unknown key 'dtyp' under case 'a' input.token_ids (did you mean 'dtype'?)" in str(
        err.value
    )
    no_shape = write(
        tmp_path,
        "name: s\ncases:\n  - name: a\n    model: zoo:mlp\n    input:\n"
        "      token_ids: {shape: [8]}\n      mask: {maxval: 2}\n",
    )
    with pytest.raises(SuiteError, match="input 'mask' needs a 'shape'"):
        load_suite(no_shape)


def test_saved_model_references_are_checked_before_anything_runs(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "sm").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    ok = write(
        tmp_path,
        "name: s\ncases:\n  - name: a\n    model: m.keras\n  - name: b\n    model: sm/\n    task: infer\n",
    )
    assert [c.model for c in load_suite(ok).cases] == ["m.keras", "sm/"]
    bad = write(
        tmp_path,
        "name: s\ncases:\n  - name: a\n    model: missing.keras\n"
        "  - name: b\n    model: sm/\n  - name: c\n    model: empty/\n    task: infer\n",
    )
    with pytest.raises(SuiteError) as err:
        load_suite(bad)
    text = str(err.value)
    assert "file not found: missing.keras" in text
    assert "is a SavedModel folder: only its serving signature is timed, so it needs task: infer" in text
    assert "empty/ is a folder without saved_model.pb" in text


# --- inputs from the model's structure ----------------------------------------------------------------------


FAST = dict(steps=3, repeats=1, warmup_steps=1, profile=False, batch_sizes=(4,))


def run_case(case: CaseSpec, base: Path, out: Path | None = None) -> dict:
    ctx = harness.JobContext(out_dir=out, tf_device="/CPU:0")
    return {
        job.mode: harness.run_job(case, job, ctx, lambda r: resolve_reference(r, base)) for job in case.jobs()
    }


def list_model():
    a = keras.Input((3,), name="a")
    ids = keras.Input((5,), dtype="int32", name="ids")
    x = keras.layers.Concatenate()([a, keras.layers.Flatten()(keras.layers.Embedding(7, 2)(ids))])
    return keras.Model([a, ids], keras.layers.Dense(4)(x))


def test_list_inputs_and_vocabulary_come_from_the_model_and_labels_from_its_output():
    s = inputs_from_model(list_model(), "t.py:list_model")
    assert s.kind == "list" and s.names == ["a", "ids"]
    assert s.inputs[1].spec == InputSpec(
        shape=(5,), dtype="int32", maxval=7
    )  # below the Embedding's input_dim
    assert labels_from_model(list_model()).classes == 4
    override = inputs_from_model(
        list_model(), "t.py:list_model", by_name={"ids": InputSpec((5,), "int32", 3)}
    )
    assert override.inputs[1].spec.maxval == 3 and override.inputs[0].spec.shape == (3,)


def test_bad_input_names_the_inputs_the_type_and_the_key_to_set(tmp_path):
    with pytest.raises(
        ModelInputError, match=r"names 'idz', which the model does not have; its inputs: a, ids"
    ):
        inputs_from_model(list_model(), "t.py:list_model", by_name={"idz": InputSpec((5,))})
    seq = keras.Model(
        i := keras.Input((None,), dtype="int32", name="tokens"), keras.layers.Embedding(9, 2)(i)
    )
    with pytest.raises(
        ModelInputError, match=r"input 'tokens' has shape \[None\].*input: \{shape: \[\.\.\.\]\}"
    ):
        inputs_from_model(seq, "t.py:seq")
    (tmp_path / "f.py").write_text("def not_a_model():\n    return {'weights': 1}\n")
    case = CaseSpec(name="x", model="f.py:not_a_model", modes=("eager",), **FAST)
    r = run_case(case, tmp_path)["eager"]
    assert r.status == "failed" and "gave builtins.dict, not a model" in r.error.message
    assert "keras.Model (Keras 3), a tf_keras.Model (Keras 2)" in r.error.message


# --- saved models as models ---------------------------------------------------------------------------------


def test_a_keras_file_and_a_savedmodel_folder_run_in_every_applicable_mode(tmp_path):
    inp = keras.Input((12,), name="x")
    model = keras.Model(inp, keras.layers.Dense(5)(keras.layers.Dense(16, activation="relu")(inp)))
    model.save(tmp_path / "m.keras")
    model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    out = tmp_path / "out"
    trained = run_case(CaseSpec(name="k", model="m.keras", **FAST), tmp_path, out)
    assert {m: r.status for m, r in trained.items()} == {"eager": "ok", "function": "ok", "xla": "ok"}
    assert trained["xla"].setup.keras.startswith("keras 3")
    served = run_case(
        CaseSpec(
            name="s", model="sm/", task="infer", modes=("eager", "function", "xla", "savedmodel"), **FAST
        ),
        tmp_path,
        out,
    )
    assert {m: r.status for m, r in served.items()} == dict.fromkeys(
        ("eager", "function", "xla", "savedmodel"), "ok"
    )
    assert served["function"].setup.saved_model["signature"] == "serving_default"
    assert served["savedmodel"].output_agreement.max_abs_error < 1e-5  # the folder itself, reloaded
    refused = run_case(CaseSpec(name="t", model="sm/", modes=("eager",), **FAST), tmp_path)["eager"]
    assert refused.status == "failed" and "task: infer" in refused.error.message


# --- a user's stateful training step ------------------------------------------------------------------------


def test_the_guides_training_step_gives_the_same_first_output_in_every_mode_from_the_same_state():
    case = CaseSpec(
        name="loop",
        function="training_loop.py:train_step",
        inputs="training_loop.py:batches",
        modes=("function", "xla", "eager"),
        steps=4,
        repeats=1,
        warmup_steps=2,
        profile=False,
        tf_config={"output_check": True, "seed": 1234},
    )
    results = run_case(case, EXAMPLES)
    firsts = {m: r.output_check.first_step for m, r in results.items()}
    assert all(r.ok for r in results.values())
    # Jobs after the first ran after 4+ training steps of the same module-level model; the state was put back.
    base = firsts["function"].values[0]
    assert all(abs(f.values[0] - base) <= 1e-3 * abs(base) for f in firsts.values()), firsts
    assert firsts["eager"].state_variables > 6  # the model's weights, the optimizer's slots, the metric


def test_a_model_built_on_its_first_call_starts_every_job_from_its_initial_weights(tmp_path):
    """The guide's loop with a Sequential that has no Input (built on first use, like a subclassed model): its
    weights are created by the first call, which also trains them. Before, the next job reset them to zeros
    and XLA's first output was 0.11 away from tf.function's; now they are created at their initial values
    before the state is read (step_state.create_variables), so every mode's first step starts from the same
    weights."""
    guide = (EXAMPLES / "training_loop.py").read_text()
    lazy = guide.replace(
        "model = keras.Model(inputs=inputs, outputs=outputs)",
        "model = keras.Sequential([keras.layers.Dense(64, activation='relu'), keras.layers.Dense(10)])",
    )
    assert lazy != guide
    (tmp_path / "lazy_loop.py").write_text(lazy)
    case = CaseSpec(
        name="lazy",
        function="lazy_loop.py:train_step",
        inputs="lazy_loop.py:batches",
        modes=("function", "xla"),
        steps=4,
        repeats=1,
        warmup_steps=2,
        profile=False,
        tf_config={"output_check": True, "seed": 1234},
    )
    results = run_case(case, tmp_path)
    assert all(r.ok for r in results.values()), {m: r.error for m, r in results.items()}
    first, xla = (results[m].output_check.first_step.values[0] for m in ("function", "xla"))
    assert abs(xla - first) <= 1e-3 * abs(first), (first, xla)
    assert results["function"].tracing_count == 1  # the step itself found its model built: one trace


def test_tune_compares_a_training_steps_first_outputs_not_outputs_after_different_numbers_of_steps():
    from tfperf.results.model import Result
    from tfperf.tune.candidates import Candidate
    from tfperf.tune.ranking import CaseTuning, Row, evaluate

    def row(cid: str, after: float, first: float) -> Row:
        r = Result(
            case=f"loop+{cid}",
            mode="function",
            device="cpu",
            task="train",
            batch_size=None,
            samples=[0.01] * 6,
            repeat_sizes=[3, 3],
            repeat_process=[0, 1],
        )
        r.output_check = {"fingerprint": {"values": [after]}, "first_step": {"values": [first]}}
        return Row(Candidate(cid, "baseline" if cid == "baseline" else "threads"), r)

    tuning = CaseTuning("loop", 60)
    tuning.baseline = row("baseline", 2.3, 2.5846)
    tuning.rows = [tuning.baseline, row("threads-1x1", 1.6, 2.5846), row("broken", 1.6, 2.1)]
    evaluate(tuning)
    assert tuning.rows[1].excluded is None  # the after-run outputs differ by 0.3: not like with like
    assert "outputs differ" in tuning.rows[2].excluded  # a first step that really differs is still caught


# --- task: fit ----------------------------------------------------------------------------------------------


def test_fit_keys_are_checked_with_their_task(tmp_path):
    bad = write(
        tmp_path,
        "name: s\ncases:\n  - name: a\n    model: zoo:mlp\n    steps_per_execution: 4\n"
        "  - name: b\n    function: f.py:f\n    inputs: f.py:i\n    task: fit\n",
    )
    (tmp_path / "f.py").write_text("def f(x):\n    return x\n\ndef i():\n    return []\n")
    with pytest.raises(SuiteError) as err:
        load_suite(bad)
    text = str(err.value)
    assert "s.yaml:5: case 'a': steps_per_execution is model.fit's (task: fit); the task is train" in text
    assert "task: fit trains a Keras model with model.fit; a 'function' case has none" in text


@pytest.mark.parametrize("spe", [1, 4])
def test_fit_times_keras_own_loop_per_step_in_every_mode(spe):
    case = CaseSpec(
        name=f"fit{spe}",
        model="zoo:mlp",
        params={"hidden": [32]},
        task="fit",
        steps=8,
        repeats=2,
        warmup_steps=2,
        steps_per_execution=spe,
        profile=False,
        batch_sizes=(16,),
    )
    results = run_case(case, REPO)
    for mode, r in results.items():
        assert r.ok, (mode, r.error)
        assert (
            len(r.samples) == 2 * (8 // spe) and r.repeat_sizes == [8 // spe] * 2
        )  # one sample per execution
        assert r.timing.method == "fit_callback" and r.timing.block_size == spe
        assert r.setup.steps_per_execution == spe and r.first_call_s > 0
        # The harness's conventions: warm-up until WARMUP_MIN_S, or until WARMUP_MAX_EXTRA_STEPS more steps,
        # in whole executions (a step under 0.5 ms reaches the cap first); the sync's cost; and the process's
        # noise record over the warm-up and the timed executions.
        t = r.timing
        cap = case.warmup_steps + WARMUP_MAX_EXTRA_STEPS
        assert t.warmup_s >= WARMUP_MIN_S or t.warmup_steps_run >= cap, t
        assert t.warmup_steps_run % spe == 0 and t.sync_cost_s >= 0
        assert t.gc_disabled_while_timing and set(t.noise) == set(noise.finish(noise.start(), 0, 0))
        assert t.noise["timed_s"] >= t.warmup_s + sum(r.samples) * spe - 1e-6
    assert results["eager"].setup.fit.run_eagerly and results["xla"].setup.fit.jit_compile


# --- keras: [3, 2] ------------------------------------------------------------------------------------------


def test_keras_3_and_2_side_by_side_for_a_zoo_model(tmp_path):
    pytest.importorskip("tf_keras")
    suite = write(
        tmp_path,
        "name: s\ndefaults: {steps: 3, repeats: 1, warmup_steps: 1, profile: false}\ncases:\n"
        "  - name: mlp\n    model: zoo:mlp\n    params: {hidden: 32}\n    keras: [3, 2]\n"
        "    modes: [function]\n    batch_size: 8\n",
    )
    cases = load_suite(suite).cases
    assert [(c.name, c.keras) for c in cases] == [("mlp-keras3", 3), ("mlp-keras2", 2)]
    from tfperf.suite.plan import apply_overrides

    assert len(apply_overrides(load_suite(suite), cases=["mlp"]).cases) == 2  # --case mlp selects both
    ran = {c.name: run_case(c, tmp_path)["function"] for c in cases}
    assert ran["mlp-keras3"].setup.keras.startswith("keras 3") and ran["mlp-keras3"].ok
    assert ran["mlp-keras2"].setup.keras.startswith("tf_keras 2") and ran["mlp-keras2"].ok


def test_keras_2_bad_input_says_how_to_install_or_what_the_factory_lacks(tmp_path, monkeypatch):
    import tfperf.suite.loader as loader

    monkeypatch.setattr(loader, "_has_tf_keras", lambda: False)  # as on a machine without the models extra
    suite = write(tmp_path, "name: s\ncases:\n  - name: mlp\n    model: zoo:mlp\n    keras: [3, 2]\n")
    with pytest.raises(
        SuiteError,
        match=r"keras: 2 needs Keras 2 \(tf_keras\), which is not installed: "
        r"pip install tf-keras",
    ):
        load_suite(suite)
    (tmp_path / "f.py").write_text(
        "import keras\n\ndef mlp():\n    i = keras.Input((3,))\n"
        "    return keras.Model(i, keras.layers.Dense(2)(i))\n"
    )
    case = CaseSpec(name="x", model="f.py:mlp", keras=2, modes=("eager",), **FAST)
    r = run_case(case, tmp_path)["eager"]
    assert (
        r.status == "failed"
        and "takes no `keras` argument, so keras: 2 cannot pick its Keras" in r.error.message
    )
