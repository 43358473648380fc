"""The documentation: the README stays a landing page, every page under docs/ is in the site's nav, every
suite key and results.json field is documented, links stay inside docs/, and `mkdocs build --strict` passes (a
broken link or anchor, or a page missing from the nav, fails it).

No TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tfperf.results.model import Result, RunResult
from tfperf.suite import schema

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

# The two commands the README starts with: they work on a fresh machine, and .ci/run runs the second.
FIRST_COMMANDS = [
    "python3 -m pip install -e . && tfperf run suites/quickstart.yaml",
    'python3 -m pip install -e ".[test,models]" && python3 -m pytest -q',
]
LANDING_MAX_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans, where a link is a link."""
    text = re.sub(r"^ *```.*?^ *```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(text: str) -> list[str]:
    """Link targets into the repository (no scheme, no bare in-page anchor), without their anchor."""
    targets = [m.group(1) for m in LINK.finditer(prose(text))]
    return [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node] if node.endswith(".md") else []
    if isinstance(node, dict):
        return [p for value in node.values() for p in nav_pages(value)]
    if isinstance(node, list):
        return [p for item in node for p in nav_pages(item)]
    return []


def test_readme_is_a_landing_page_that_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) < LANDING_MAX_LINES, (
        f"README.md has {len(lines)} lines: it is the landing page (under {LANDING_MAX_LINES}); reference "
        "material goes into a page under docs/"
    )
    opening = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert opening < 15, "the README's first code block should come right after its opening paragraph"
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].startswith("```"))
    block = [line for line in lines[opening + 1 : closing] if line.strip() and not line.startswith("#")]
    assert block == FIRST_COMMANDS, f"the README's first code block is {block}"


def test_readme_links_resolve():
    for target in relative_links(README.read_text()):
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_every_docs_page_is_in_the_nav():
    config = YAML(typ="safe").load(MKDOCS_YML.read_text())
    nav = nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(set(nav)) == pages, f"mkdocs.yml's nav lists {sorted(set(nav))}, docs/ holds {pages}"
    assert len(nav) == len(set(nav)), "a page is listed twice in mkdocs.yml's nav"
    assert config["nav"][0] == {"Home": "index.md"}


def test_docs_links_stay_inside_docs():
    # mkdocs build --strict checks this and the anchors too; this check runs without MkDocs installed.
    for page in sorted(DOCS.rglob("*.md")):
        for target in relative_links(page.read_text()):
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(DOCS), (
                f"{page.relative_to(ROOT)} links to {target}, outside docs/: the site holds only docs/; "
                "name a source file as inline code instead"
            )
            assert resolved.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


@pytest.mark.parametrize(
    "model",
    [
        schema.SuiteModel,
        schema.CaseModel,
        schema.InputModel,
        schema.NamedInputModel,
        schema.PipelineModel,
        schema.LabelsModel,
        schema.DistributeModel,
    ],
    ids=lambda m: m.__name__,
)
def test_every_suite_key_is_documented(model):
    text = (DOCS / "suites.md").read_text()
    # Named in the prose (`key`, `key: value`) or written in a YAML example (`  key: value`).
    documented = [rf"`{re.escape(key)}(`|:)|^[ -]*{re.escape(key)}:" for key in model.model_fields]
    missing = [
        key for key, pattern in zip(model.model_fields, documented) if not re.search(pattern, text, re.M)
    ]
    assert not missing, f"suite keys of {model.__name__} not named in docs/suites.md: {missing}"


@pytest.mark.parametrize("record", [RunResult, Result], ids=lambda r: r.__name__)
def test_every_results_json_field_is_documented(record):
    text = (DOCS / "outputs.md").read_text()
    fields = [f.name for f in dataclasses.fields(record)]
    missing = [name for name in fields if f"`{name}`" not in text]
    assert not missing, f"results.json fields of {record.__name__} not named in docs/outputs.md: {missing}"


def test_mkdocs_build_strict(tmp_path):
    for package in ("mkdocs", "material"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed: pip install -e '.[docs]' to build the documentation")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(MKDOCS_YML),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    assert (tmp_path / "site" / "index.html").exists()
