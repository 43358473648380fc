"""The progress lines: each finished job by its JobSpec label, with its figures written by tfperf.units."""

import io

from builders import result

from tfperf.results.model import Result
from tfperf.run.progress import LineReporter, describe


def test_a_measured_job_shows_its_median_first_call_and_traces():
    r = result(
        "xla", case="mlp", samples=[0.00856] * 5, first_call_s=1.2, tracing_count=1, repeat_process=[0]
    )
    assert describe(r) == "ok  8.56 ms/step, first call 1.20 s, 1 trace(s)"


def test_a_later_process_says_which_one():
    r = result("xla", case="mlp", samples=[0.00856] * 5, repeat_process=[2])
    assert describe(r) == "ok  8.56 ms/step in process 3"


def test_a_failed_job_shows_its_error():
    r = Result.not_run(result("xla", case="mlp").spec, "failed", "WorkerCrash", "killed by SIGKILL")
    assert describe(r) == "failed  WorkerCrash: killed by SIGKILL"


def test_line_reporter_labels_jobs_like_every_other_output():
    out = io.StringIO()
    reporter = LineReporter(out)
    reporter.start(2)
    r = result("xla", case="mlp", samples=[0.002] * 3, first_call_s=0.5)
    reporter.job_finished(r)
    assert out.getvalue() == f"[1/2] {r.spec.label}: {describe(r)}\n"
    assert r.spec.label == "mlp [xla bs=32]"
