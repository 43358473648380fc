"""The report answers first: a verdict per case at the top that matches the advisor, suggestions ranked
by measured gain with identical fixes merged, a phone-width render that keeps the verdict and the key column
in view, a print that holds every heading (collapsed sections opened), charts whose series stay apart under
deuteranopia, xprof's tips as safe links, no device fields on a CPU run, and report.md and the terminal headed
by the same verdict and ranking.

Pages open in real headless Chromium, driven as in test_html_report (DevTools protocol over a pipe).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from builders import result, run_of
from conftest import ROOT, run_tfperf
from test_html_report import Chromium, needs_chromium

from tfperf.analysis.advisor import attach_suggestions
from tfperf.figures.measures import suggestion_gain
from tfperf.report import chart_style
from tfperf.report.headline import case_verdicts
from tfperf.report.html import render_html, write_html
from tfperf.report.plain import safe_links
from tfperf.report.ranked import ranked_cards
from tfperf.report.tables import render, render_markdown
from tfperf.results.model import Result, RunResult, load_results


def timed(rng, median_s: float, sigma: float = 0.02, processes: int = 3, per: int = 10) -> dict:
    """Samples from three worker processes of one repeat each, recorded as the runner records them."""
    samples = [float(x) for x in rng.lognormal(np.log(median_s), sigma, processes * per)]
    return {"samples": samples, "repeat_sizes": [per] * processes, "repeat_process": list(range(processes))}


def smoke_shaped_run() -> RunResult:
    """The smoke suite's three cases, each built so the advisor decides differently: XLA wins clearly (mlp),
    XLA loses clearly (small_cnn-infer), XLA is 3% faster inside the noise (matmul-chain)."""
    rng = np.random.default_rng(20)
    spec = {
        "mlp": (0.012, 0.003, 0.002, 0.02),
        "small_cnn-infer": (0.020, 0.005, 0.007, 0.02),
        "matmul-chain": (0.008, 0.004, 0.00388, 0.25),
    }
    results = []
    for case, (eager, fn, xla, sigma) in spec.items():
        for mode, median, first in (("eager", eager, 0.2), ("function", fn, 0.6), ("xla", xla, 2.0)):
            results.append(
                result(
                    mode,
                    case=case,
                    first_call_s=first,
                    model="zoo:mlp",
                    **timed(rng, median, sigma if mode != "eager" else 0.02),
                )
            )
    run = run_of(
        *results,
        suite={"name": "smoke"},
        environment={
            "cpu_count": 2,
            "gpus": [],
            "cuda": "12.5",
            "intra_op_threads": 0,
            "inter_op_threads": 0,
        },
        command=["tfperf", "run", "suites/smoke.yaml"],
    )
    attach_suggestions(run)
    return run


CACHE = "dataset = dataset.cache()"


def pipeline_run() -> RunResult:
    """Five one-mode pipeline cases whose what-if re-runs all measured cache() (one fix, five places), one
    also prefetch, and a case where a larger batch did not help."""
    rng = np.random.default_rng(21)
    results = []
    for i, case in enumerate(("naive", "prefetch", "interleave", "parallel-map", "shuffle")):
        base = 0.120 + 0.005 * i
        what_if = [
            {
                "change": "cache()",
                "code": CACHE,
                "median_s": base / (2.0 + 0.1 * i),
                "baseline_median_s": base,
                "speedup": 2.0 + 0.1 * i,
                "p_value": 1e-5,
                "helped": True,
            }
        ]
        if case == "naive":
            what_if.append(
                {
                    "change": "prefetch(AUTOTUNE)",
                    "code": "dataset = dataset.prefetch(tf.data.AUTOTUNE)",
                    "median_s": base / 1.3,
                    "baseline_median_s": base,
                    "speedup": 1.3,
                    "p_value": 1e-4,
                    "helped": True,
                }
            )
            what_if.append(
                {
                    "change": "larger batch (8 → 16)",
                    "code": "dataset = dataset.batch(16)",
                    "median_s": base * 1.9,
                    "baseline_median_s": base,
                    "speedup": 1.05,
                    "batch_size": 16,
                    "p_value": 0.3,
                    "helped": False,
                }
            )
        results.append(
            result(
                "function",
                case=case,
                batch_size=8,
                input_wait_fraction=0.6,
                first_call_s=0.4,
                what_if=what_if,
                **timed(rng, base),
            )
        )
    run = run_of(*results, suite={"name": "input_pipeline"}, environment={"cpu_count": 2, "gpus": []})
    attach_suggestions(run)
    return run


def browse(
    page: Path, tmp_path: Path, expressions: dict[str, str], width: int = 1400, pdf: bool = False
) -> dict:
    """Open a page at a width, evaluate expressions; optionally print it to PDF. Returns values (and pdf
    bytes)."""
    browser = Chromium(tmp_path / f"chromium-{width}")
    try:
        session = browser.open(page, width, 900)
        out = {"values": browser.evaluate(session, expressions)}
        if pdf:
            out["pdf"] = base64.b64decode(browser.send("Page.printToPDF", {}, session=session)["data"])
    finally:
        browser.close()
    return out


VERDICT_JS = (
    "JSON.stringify([...document.querySelectorAll('#verdict tr[data-summary-case]')]"
    ".map(tr => [tr.dataset.summaryCase, tr.dataset.verdictMode, tr.innerText]))"
)


def advisor_mode(results: list[Result]) -> str:
    """The mode the advisor's suggestions point to for one case, read straight from its codes."""
    codes = {
        s.code
        for r in results
        for s in r.suggestions
        if s.code != "use-tf-function" or "speedup" in (s.evidence_data or {})
    }
    return "xla" if "enable-xla" in codes else "function"


@pytest.mark.browser
@needs_chromium
def test_verdict_block_comes_first_and_names_the_advisors_mode_per_case(tmp_path):
    run = smoke_shaped_run()
    page = write_html(run, tmp_path / "report.html")
    seen = browse(
        page, tmp_path, {"verdict": VERDICT_JS, "first": "document.querySelector('main section').id"}
    )
    assert seen["values"]["first"] == "verdict"
    rows = {case: (mode, text) for case, mode, text in json.loads(seen["values"]["verdict"])}
    assert list(rows) == ["mlp", "small_cnn-infer", "matmul-chain"]
    for case, (mode, _text) in rows.items():
        results = [r for r in run.results if r.case == case]
        assert mode == advisor_mode(results), case
    codes = {c: {s.code for r in run.results if r.case == c for s in r.suggestions} for c in rows}
    assert "enable-xla" in codes["mlp"] and rows["mlp"][0] == "xla"
    # The modes side by side, function vs XLA included, fastest first.
    assert re.search(
        r"measured, vs function:\s*xla [\d.]+ ms, 1\.\d\dx\s*function [\d.]+ ms\s*eager", rows["mlp"][1]
    )
    # XLA loses clearly: the advisor's avoid-xla title is the reason given beside tf.function.
    [avoid] = [
        s for r in run.results if r.case == "small_cnn-infer" for s in r.suggestions if s.code == "avoid-xla"
    ]
    assert rows["small_cnn-infer"][0] == "function" and avoid.title in rows["small_cnn-infer"][1]
    # XLA inside the noise: not recommended, and the page says why (no XLA code at all).
    assert not codes["matmul-chain"] & {"enable-xla", "avoid-xla", "xla-compile-payback"}
    assert "not significantly" in rows["matmul-chain"][1] and "no XLA suggestion" in rows["matmul-chain"][1]


@pytest.mark.browser
@needs_chromium
def test_suggestions_are_ranked_by_measured_gain_and_identical_fixes_merge(tmp_path):
    run = pipeline_run()
    page = write_html(run, tmp_path / "report.html")
    seen = browse(
        page,
        tmp_path,
        {
            "cards": "JSON.stringify([...document.querySelectorAll('[data-suggestion]')]"
            ".map(c => [c.dataset.suggestion, c.dataset.gain, "
            "c.querySelectorAll('ul.evidence li').length, "
            "c.querySelectorAll('pre').length]))"
        },
    )
    cards = json.loads(seen["values"]["cards"])
    gains = [float(g) for _, g, _, _ in cards if g]
    assert len(gains) >= 2 and gains == sorted(gains, reverse=True)
    # Measured gains come before every card without one.
    first_unmeasured = next((i for i, (_, g, _, _) in enumerate(cards) if not g), len(cards))
    assert all(not g for _, g, _, _ in cards[first_unmeasured:])
    # cache() in five cases is one card, listing the five places, its code once.
    cache = [c for c in cards if c[0] == "cache-dataset"]
    assert cache == [["cache-dataset", cache[0][1], 5, 1]]
    assert cards[0][0] == "cache-dataset" and float(cards[0][1]) == pytest.approx(2.4, rel=1e-3)
    # The verdict's best measured fix is the top card's; the batch that did not help is named as such.
    naive = case_verdicts(run)[0]
    assert naive.best_fix.startswith("cache(): measured 2.00× faster")
    assert any("larger batch" in t and "did not help" in t for t in naive.not_recommended)


@pytest.mark.browser
@needs_chromium
def test_phone_width_keeps_the_verdict_and_the_first_results_column_in_view(tmp_path):
    page = write_html(smoke_shaped_run(), tmp_path / "report.html")
    rect = "(el => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.top]; })"
    seen = browse(
        page,
        tmp_path,
        {
            "scroll_width": "document.documentElement.scrollWidth",
            "verdict_case": f"{rect}(document.querySelector('#verdict tbody td'))",
            "verdict_use": f"{rect}(document.querySelector('#verdict tbody td.use'))",
            "results_case": f"{rect}(document.querySelector('table.results tbody td'))",
            "results_median": f"{rect}(document.querySelector('table.results tbody td[data-label=\"median "
            "step\"]'))",
        },
        width=420,
    )
    v = seen["values"]
    assert v["scroll_width"] <= 420  # nothing pushes the page sideways
    for key in ("verdict_case", "verdict_use", "results_case", "results_median"):
        left, right, _ = v[key]
        assert 0 <= left and right <= 420, (key, v[key])
    assert v["verdict_use"][2] < 900  # the first case's recommendation is on the first screen


@pytest.mark.browser
@needs_chromium
def test_print_to_pdf_holds_every_heading_and_opens_collapsed_sections(tmp_path):
    from pypdf import PdfReader

    run = smoke_shaped_run()
    run.results[1].profile = {
        "step_time_ms": 3.0,
        "host_compute_ms": 2.5,
        "run": "mlp-function",
        "top_ops": [{"name": "dense/MatMul", "type": "MatMul", "self_time_us": 900.0, "share": 0.5}],
    }
    run.results[2].graph = {"op_count": 40, "hlo_instructions": 120, "fusions": 7}
    page = write_html(run, tmp_path / "report.html")
    seen = browse(
        page,
        tmp_path,
        {
            "headings": "JSON.stringify([...document.querySelectorAll('h1, h2, h3')].map(h => "
            "h.textContent.trim()))",
            "closed": "document.querySelectorAll('details:not([open])').length",
        },
        pdf=True,
    )
    assert seen["values"]["closed"] > 0  # per-mode profile and details are collapsed on screen
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(seen["pdf"])).pages)
    flat = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))  # the PDF writes "ﬁ" as one ligature
    headings = json.loads(seen["values"]["headings"])
    assert any(h.startswith("Profile ·") for h in headings) and any(
        h.startswith("Details ·") for h in headings
    )
    missing = [h for h in headings if re.sub(r"\s+", "", h) not in flat]
    assert missing == []
    assert "dense/MatMul" in flat  # the inside of a collapsed section is printed, not only its heading


# --- colour -------------------------------------------------------------------------------------------------

# Machado, Oliveira and Fernandes (2009), deuteranopia at severity 1, on linear RGB.
DEUTAN = np.array(
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
)
MIN_DELTA_E = 15.0  # CIE76 distance in Lab after simulation: closer series read as one colour


def _linear(hex_color: str) -> np.ndarray:
    c = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def deutan_lab(hex_color: str) -> np.ndarray:
    lin = np.clip(DEUTAN @ _linear(hex_color), 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def collapsing_pairs(colors: set[str]) -> list[tuple[str, str, float]]:
    return [
        (a, b, round(float(np.linalg.norm(deutan_lab(a) - deutan_lab(b))), 1))
        for a, b in itertools.combinations(sorted(colors), 2)
        if np.linalg.norm(deutan_lab(a) - deutan_lab(b)) < MIN_DELTA_E
    ]


def series_colors(svg: str) -> set[str]:
    """The hues a chart draws its series in: every fill and stroke colour that is not a grey, black or
    white."""
    out = set()
    for c in re.findall(r"(?:fill|stroke):\s*(#[0-9a-fA-F]{6})", svg):
        rgb = [int(c[i : i + 2], 16) for i in (1, 3, 5)]
        if max(rgb) - min(rgb) > 24:
            out.add(c.lower())
    return out


def test_chart_series_stay_apart_under_deuteranopia():
    # The check has teeth: the old tab10 function green and xla red collapse.
    assert collapsing_pairs({"#2ca02c", "#d62728"})
    assert collapsing_pairs(set(chart_style.MODE_COLORS.values()) - {"#000000"}) == []
    rng = np.random.default_rng(3)
    deploy = [
        Result(
            "clf",
            m,
            "cpu",
            "infer",
            8,
            samples=[float(x) for x in rng.lognormal(np.log(t), 0.02, 20)],
            model_size_bytes=s,
            load_time_s=0.01,
            first_call_s=0.05,
        )
        for m, t, s in (
            ("function", 0.006, None),
            ("xla", 0.004, None),
            ("savedmodel", 0.0065, 2e6),
            ("tflite", 0.001, 1e6),
            ("tflite-dynamic", 0.0008, 3e5),
            ("tflite-int8", 0.0006, 2e5),
        )
    ]
    html = render_html(smoke_shaped_run()) + render_html(
        RunResult(suite={"name": "d"}, environment={}, results=deploy)
    )
    assert "Cold start: load + first call" in html  # deployment's cold start includes the load time
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    assert len(svgs) >= 8
    for svg in svgs:
        assert collapsing_pairs(series_colors(svg)) == [], re.findall(r"<text[^>]*>([^<]*)</text>", svg)[:3]


# --- plain language, leftovers ------------------------------------------------------------------------------


def test_xprof_tips_are_links_and_nothing_else_is_markup():
    tip = (
        'Consider using <a href="https://www.tensorflow.org/guide/data" target="_blank">the tf.data API</a> '
        '& <script>alert(1)</script> <a href="javascript:alert(2)">x</a>'
    )
    html = str(safe_links(tip))
    assert (
        '<a href="https://www.tensorflow.org/guide/data" rel="noopener noreferrer">the tf.data API</a>'
        in html
    )
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp;" in html
    assert 'href="javascript' not in html
    r = Result(
        "p",
        "function",
        "cpu",
        "train",
        8,
        samples=[0.01] * 10,
        profile={
            "input_next_step": tip,
            "device_compute_ms": 0.0,
            "host_compute_ms": 9.0,
            "kernel_launch_ms": 0.0,
        },
    )
    page = render_html(
        RunResult(
            suite={"name": "t"},
            environment={"cpu_count": 2, "gpus": [], "cuda": "12.5", "cudnn": "9", "intra_op_threads": 0},
            results=[r],
        )
    )
    assert 'rel="noopener noreferrer">the tf.data API</a>' in page and "<script>alert" not in page
    # A CPU run: no device figures, no CUDA beside "gpus: none", threads as TensorFlow reads 0.
    assert "device compute" not in page and "kernel_launch" not in page
    assert "<dt>cuda</dt>" not in page and "<dt>cudnn</dt>" not in page
    assert "<dt>intra_op_threads</dt><dd>default (2)</dd>" in page
    assert 'id="glossary"' in page and "Mann–Whitney U p-value" in page


def test_report_md_and_terminal_are_headed_by_the_same_verdict_and_ranking():
    run = pipeline_run()
    md, term = render_markdown(run), render(run, "table")
    verdicts = case_verdicts(run)
    cards = ranked_cards(run)
    # report.md: the verdict, then the ranked suggestions, then the results table.
    assert md.index("## Verdict") < md.index("## Suggestions") < md.index("## Results")
    for v in verdicts:
        assert f"- {v.case}: {v.use}" in md and f"{v.case}: {v.use}" in term
    # The same order in all three outputs.
    md_codes = re.findall(r"^\d+\. `([a-z-]+)`", md, re.M)
    term_codes = re.findall(r"^\d+\. \[([a-z-]+)\]", term, re.M)
    assert md_codes == [c.code for c in cards] and term_codes == [
        c.code for c in cards if c.code != "noisy-measurement"
    ]
    assert term.startswith("verdict per case")
    gains = [suggestion_gain(s) for r in run.results for s in r.suggestions if s.code == "cache-dataset"]
    assert max(g.factor for g in gains) == pytest.approx(cards[0].gain.factor)


def test_one_mode_suite_gets_a_cross_case_chart_and_no_one_series_charts():
    run = pipeline_run()
    for r in run.results:
        r.what_if = []
    html = render_html(run)
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", html)
    assert "Every case's median step against naive" in texts
    # The verdict words the same comparison: each case against the first (naive), with the advisor's test.
    gains = {v.case: v.gain for v in case_verdicts(run)}
    assert gains["naive"] == "the baseline the other cases are compared with"
    assert all(
        re.match(rf"{case} [\d.]+ ms/step vs naive [\d.]+ ms/step \(", gains[case])
        for case in list(gains)[1:]
    )
    # One mode per case: no throughput bars or step series of a single series.
    assert "Throughput (from the median step)" not in texts and "Step time, step by step" not in texts


# --- a real run of the smoke suite --------------------------------------------------------------------------


@pytest.mark.workers
@needs_chromium
def test_real_smoke_run_verdict_matches_the_advisor(tmp_path):
    out = tmp_path / "out"
    proc = run_tfperf(
        "run",
        str(ROOT / "suites" / "smoke.yaml"),
        "--out",
        str(out),
        "--quiet",
        "--steps",
        "5",
        "--repeats",
        "2",
        "--processes",
        "1",
        "--no-profile",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = load_results(out)
    seen = browse(out / "report.html", tmp_path, {"verdict": VERDICT_JS})
    rows = {case: mode for case, mode, _ in json.loads(seen["values"]["verdict"])}
    cases = list(dict.fromkeys(r.case for r in run.results))
    assert list(rows) == cases
    for case in cases:
        assert rows[case] in ("xla", "function", "eager"), case
        results = [r for r in run.results if r.case == case]
        if rows[case] != "eager":  # eager only when tf.function was significantly slower, which no code says
            assert rows[case] == advisor_mode(results), case
    # The terminal printed the same verdict first.
    assert proc.stdout.lstrip().startswith("verdict per case") or "verdict per case" in proc.stdout
