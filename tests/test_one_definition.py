"""The terminal table, report.md, the HTML page and the advisor's suggestions say the same thing about the
same results.

The results are built by hand (no TensorFlow) on exactly the points where the old definitions disagreed:
- a job whose measured input wait (3%) and profiler figure (31%, an eager "All Others" conclusion) differ: the
  old page took the larger and called it "highly input-bound", the advisor the measured one;
- a job measured on a device with no eager run beside it: the old page matched the eager row on batch size
  only;
- noisy rows: the old page wrote its own "timing is noisy" finding beside the advisor's suggestion;
- XLA 3% faster than tf.function, not significantly: the old page showed a payback point the advisor never
  made;
- XLA 8% slower, not significantly: the old page called it an "XLA loss" with no significance test;
- XLA significantly faster: the old page's payback was 1 + cost/saving calls, the advisor's ceil(cost/saving)
  steps.
"""

from __future__ import annotations

import html as htmllib
import re

import pytest
from builders import result, run_of

from tfperf import units
from tfperf.analysis.advisor import attach_suggestions
from tfperf.figures import measures
from tfperf.report.html import render_html
from tfperf.report.tables import render_markdown, render_table
from tfperf.results.model import Result, RunResult

ALL_OTHERS = (
    "Your program is POTENTIALLY input-bound because 31.9% of the total step time sampled is spent on "
    "'All Others' time (which could be due to I/O or Python execution or both)."
)


def spread(median_s: float, width: float, n: int = 30) -> list[float]:
    """n step times spread evenly over median ± width/2 (relative): a wide spread makes a noisy row and keeps
    a few percent between two such rows far from significant."""
    return [median_s * (1 - width / 2 + width * i / (n - 1)) for i in range(n)]


def tight(median_s: float, n: int = 30) -> list[float]:
    return [median_s * (1 + 0.001 * (i - n / 2) / n) for i in range(n)]


def build_run() -> RunResult:
    results = [
        # Measured wait 3%, the profiler 31% (its conclusion quotes eager Python dispatch as "All Others").
        result(
            "eager",
            case="pipeline",
            samples=tight(0.040),
            first_call_s=0.1,
            input_wait_fraction=0.03,
            profile={"input_bound_percent": 31.0, "input_conclusion": ALL_OTHERS},
        ),
        result("function", case="pipeline", samples=tight(0.020), first_call_s=0.3, input_wait_fraction=0.03),
        # No wait measured: the profiler's figure decides, and says where it comes from.
        result(
            "function",
            case="profiled",
            samples=tight(0.020),
            first_call_s=0.3,
            profile={"input_bound_percent": 25.0},
        ),
        # A GPU function run with no GPU eager run: no speed-up over eager for it.
        result("eager", case="devices", samples=tight(0.030), first_call_s=0.1),
        result("function", case="devices", samples=tight(0.010), first_call_s=0.3),
        result("function", case="devices", samples=tight(0.002), device="gpu:0", first_call_s=0.3),
        # XLA 3% faster than tf.function, both noisy: not significant.
        result("function", case="xla-tie", samples=spread(0.010, 0.6), first_call_s=0.5),
        result("xla", case="xla-tie", samples=spread(0.0097, 0.6), first_call_s=2.0),
        # XLA 8% slower, both noisy: not significant either.
        result("function", case="xla-noise", samples=spread(0.010, 0.6), first_call_s=0.5),
        result("xla", case="xla-noise", samples=spread(0.0108, 0.6), first_call_s=2.0),
        # XLA 30% faster, clearly: the advisor's payback.
        result("function", case="xla-win", samples=tight(0.010), first_call_s=0.5),
        result("xla", case="xla-win", samples=tight(0.007), first_call_s=2.0),
    ]
    run = run_of(*results, suite={"name": "one-definition"})
    attach_suggestions(run)
    return run


@pytest.fixture(scope="module")
def run() -> RunResult:
    return build_run()


@pytest.fixture(scope="module")
def page(run) -> str:
    return render_html(run)


def key(case: str, mode: str, device: str = "cpu") -> tuple:
    return case, mode, device


def terminal_rows(text: str, n: int) -> dict[tuple, dict]:
    """The terminal table's n rows by (case, mode, device), cut from the text by the dashes' column spans."""
    lines = text.split("\n")
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    cells = [[line[a : b + 2].strip() for a, b in spans] for line in lines[: 2 + n]]
    return _by_key([dict(zip(cells[0], c)) for c in cells[2:]])


def markdown_rows(text: str) -> dict[tuple, dict]:
    lines = [ln for ln in text.split("\n") if ln.startswith("| ")]
    table = []
    for ln in lines:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if table and cells[0] == "case":
            break  # the next table
        table.append(cells)
    return _by_key([dict(zip(table[0], c)) for c in table[1:]])


def _by_key(rows: list[dict]) -> dict[tuple, dict]:
    # The tables carry no device column: the run's only non-CPU job is the GPU function of "devices".
    out = {}
    for row in rows:
        k = key(row["case"], row["mode"])
        out[k if k not in out else key(row["case"], row["mode"], "gpu:0")] = row
    return out


def html_rows(page: str) -> dict[tuple, dict]:
    table = page[page.index('<table class="results">') :]
    table = table[: table.index("</table>")]
    header = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    rows = []
    for tr in re.findall(r'<tr class="result"[^>]*>(.*?)</tr>', table, re.S):
        cells = [
            htmllib.unescape(re.sub(r"<[^>]+>", "", c).strip())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        ]
        rows.append(dict(zip(header, cells)))
    return _by_key(rows)


def same(cell: str) -> str:
    """The plain-text tables write a missing value "-", the page "–": the same figure."""
    return units.MISSING if cell == "-" else cell


def case_section(page: str, case: str) -> str:
    start = page.index(f'data-case-section="{case}"')
    return page[start : page.index("</section>", start)]


def findings(section: str) -> list[tuple[str, str]]:
    return [
        (kind, htmllib.unescape(text))
        for kind, text in re.findall(r'<li class="sev-\d" data-finding="([^"]+)">(.*?)</li>', section)
    ]


def test_input_bound_and_speedup_over_eager_agree_across_table_markdown_and_page(run, page):
    table = terminal_rows(render_table(run), len(run.results))
    md, web = markdown_rows(render_markdown(run)), html_rows(page)
    assert len(table) == len(md) == len(web) == len(run.results)
    for r in run.results:
        k = key(r.case, r.mode, r.device)
        ib = measures.input_bound(r)
        expected_ib = (
            units.percent(ib.fraction, 1) + (" (profiler)" if ib.source == "profiler" else "")
            if ib
            else units.MISSING
        )
        assert (
            same(table[k]["input-bound"])
            == same(md[k]["input-bound"])
            == web[k]["input-bound"]
            == expected_ib
        ), k
        expected_x = units.speedup(measures.speedup_over_eager(r, run.results))
        assert same(table[k]["vs eager"]) == same(md[k]["vs eager"]) == web[k]["vs eager"] == expected_x, k
    # The measured 3% decides, not the profiler's 31% (the old page took the larger of the two).
    assert web[key("pipeline", "eager")]["input-bound"] == "3.0%"
    assert web[key("profiled", "function")]["input-bound"] == "25.0% (profiler)"
    # No eager run on the GPU: no speed-up over eager (the old page divided by the CPU's eager step).
    assert web[key("devices", "function", "gpu:0")]["vs eager"] == units.MISSING
    assert web[key("devices", "function")]["vs eager"] == "3.00x"


def test_input_bound_verdict_matches_the_advisor_and_explains_the_profiler(run, page):
    by = {(r.case, r.mode): r for r in run.results}
    assert not [s for s in by[("pipeline", "eager")].suggestions if s.code == "input-bound"]
    sec = htmllib.unescape(case_section(page, "pipeline"))
    assert "input-bound" not in [k for k, _ in findings(sec)]
    # tfperf's verdict beside xprof's own words, and why they differ.
    assert "3.0% of the step waits for input" in sec and "not input-bound" in sec
    assert ALL_OTHERS in sec and "not time waiting for input" in sec
    profiled = by[("profiled", "function")]
    [s] = [s for s in profiled.suggestions if s.code == "input-bound"]
    assert s.evidence_data["input_wait_fraction"] == measures.input_bound_fraction(profiled) == 0.25
    assert ("input-bound", f"function (batch 32): {s.title}") in findings(case_section(page, "profiled"))


def test_page_findings_are_the_suggestions_and_nothing_else(run, page):
    for case in dict.fromkeys(r.case for r in run.results):
        results = [r for r in run.results if r.case == case]
        expected = sorted((s.code, f"{r.mode} (batch 32): {s.title}") for r in results for s in r.suggestions)
        assert sorted(findings(case_section(page, case))) == expected, case
    # The noisy rows' finding is the advisor's noisy-measurement suggestion (the old page wrote its own).
    noisy = [r for r in run.results if r.noisy]
    assert noisy and all("noisy-measurement" in {s.code for s in r.suggestions} for r in noisy)
    table = terminal_rows(render_table(run), len(run.results))
    assert all("noisy" in table[key(r.case, r.mode, r.device)]["notes"] for r in noisy)


def xla_text(page: str, case: str) -> str:
    sec = case_section(page, case)
    m = re.search(r'<p data-xla-verdict="function"><strong>XLA compile cost:</strong> (.*?)</p>', sec)
    return htmllib.unescape(m.group(1))


def test_xla_inside_the_noise_is_no_finding_and_the_page_says_why(run, page):
    by = {(r.case, r.mode): r for r in run.results}
    for case in ("xla-tie", "xla-noise"):
        codes = {s.code for r in run.results if r.case == case for s in r.suggestions}
        assert not codes & {"avoid-xla", "enable-xla", "xla-compile-payback"}, case
        assert not {k for k, _ in findings(case_section(page, case))} & {"avoid-xla", "xla-loss"}, case
    tie = xla_text(page, "xla-tie")
    assert re.fullmatch(
        r"XLA is 3% faster than tf\.function but not significantly \(p=0\.\d+\): no XLA suggestion\.", tie
    ), tie
    assert "pays back" not in tie
    assert "not significantly slower" in xla_text(page, "xla-noise")
    assert by[("xla-tie", "xla")].median_s / by[("xla-tie", "function")].median_s == pytest.approx(0.97)
    # report.md says the same sentence.
    md = render_markdown(run)
    assert f"- **xla-tie**: {tie}" in md


def test_xla_payback_steps_are_the_advisors(run, page):
    by = {(r.case, r.mode): r for r in run.results}
    fn, xla = by[("xla-win", "function")], by[("xla-win", "xla")]
    [s] = [s for s in xla.suggestions if s.code == "xla-compile-payback"]
    steps = s.evidence_data["payback_steps"]
    assert steps == measures.payback(xla.first_call_s, xla.median_s, fn.first_call_s, fn.median_s).steps
    text = xla_text(page, "xla-win")
    assert f"XLA pays back against tf.function after {steps:,} steps" in text
    assert f"after {steps:,} steps" in s.title
    # The chart marks the same point.
    assert f"XLA pays back: {steps:,} steps" in case_section(page, "xla-win")
    assert ("xla-compile-payback", f"xla (batch 32): {s.title}") in findings(case_section(page, "xla-win"))


def test_throughput_is_one_figure_in_table_markdown_and_page():
    """serve-bench's throughput is completed instances over wall time (concurrent clients), not 1 / median
    latency; the terminal table, report.md and the page all show measures.throughput's figure."""
    serve = Result(
        "served",
        "serve",
        "cpu",
        "predict",
        8,
        samples=tight(0.004),
        serve={"instances_per_s": 5321.0, "requests_per_s": 665.1, "concurrency": 4},
    )
    steps = Result("steps", "function", "cpu", "train", None, samples=tight(0.010))
    batched = result("function", case="batched", samples=tight(0.010))
    run = RunResult(suite={"name": "throughput"}, environment={}, results=[serve, steps, batched])
    assert measures.throughput(serve) == (5321.0, "instances/s")
    assert measures.throughput(steps)[1] == "steps/s" and measures.throughput(batched)[1] == "samples/s"
    table, md = terminal_rows(render_table(run), 3), markdown_rows(render_markdown(run))
    web = html_rows(render_html(run))
    for r in run.results:
        value, unit = measures.throughput(r)
        k = key(r.case, r.mode)
        expected = units.number(value) if unit != "steps/s" else f"{units.number(value)} {unit}"
        assert table[k]["samples/s"] == md[k]["samples/s"] == expected, k
        assert web[k]["throughput"] == f"{units.number(value)} {unit}", k
    assert table[key("served", "serve")]["samples/s"] == units.number(5321.0)  # not 8 / 4 ms = 2,000
