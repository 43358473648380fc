"""`tfperf tune`: search each case's configurations within a budget, rank them against the suite's baseline,
prove the winner by re-measuring it, and write tune.json, tune.md, tuned.yaml and the usual results.

The modules, in the order a tune uses them:

- `candidates` — the configurations worth measuring and the code that makes each one;
- `ranking` — speed-up per sample judged by compare's decision, the output check, verdicts and the best;
- `search` — the budgeted search (each configuration in its own `processes` workers), the confirmation, the
  run's outputs;
- `progress` — what the user sees while it searches;
- `render` — the ranked tables, the summary and tuned.yaml.

The public API, for the command line and for callers: `tune_suite`, `progress_for`, `render_text`.
"""

from tfperf.tune.progress import progress_for
from tfperf.tune.render import render_text
from tfperf.tune.search import DEFAULT_BUDGET_S, TuneRun, tune_suite

__all__ = ["tune_suite", "progress_for", "render_text", "TuneRun", "DEFAULT_BUDGET_S"]
