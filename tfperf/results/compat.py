"""Reading results.json files written by earlier versions of tfperf: what moved is put where it is now, on
load, so every reader sees one layout. Saving such a file writes the current layout."""

from __future__ import annotations

from typing import Any


def upgrade_result(d: dict[str, Any]) -> dict[str, Any]:
    """A result entry in the current layout (a copy when anything moved)."""
    return _tune_variant(d)


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
