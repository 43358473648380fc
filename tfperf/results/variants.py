"""What a variant of a job changed: `tfperf tune` measures each case under several configurations, each a
variant of the suite's job (`JobSpec.variant`, the configuration's id; the case keeps its own name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfperf.results.records import Record


@dataclass
class TuneConfig(Record):
    """The `tfperf tune` configuration a result measured (`Result.tune`; its id is `Result.variant`)."""

    group: str | None = (
        None  # baseline | pipeline | precision | threads | jit | grappler | combined | confirm
    )
    label: str | None = None  # how the configuration reads in tune's tables
    settings: dict[str, Any] = field(default_factory=dict)  # tf_config keys it set for the whole process
    pipeline: dict[str, Any] = field(default_factory=dict)  # tf.data changes to the case's synthetic pipeline
