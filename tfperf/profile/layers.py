"""Layer by layer, function vs XLA: which Keras layers XLA made faster and which slower.

Both modes' profiled passes split op self time per Keras layer and per phase (tfperf/profile/attribution.py):
in `function` mode over the TF ops the runtime ran (after Grappler), in `xla` mode over the HLO ops, each
attributed through the TF op it was lowered from (tfperf/profile/hlo_ops.py). Side by side, per profiled step,
they say where XLA's difference comes from. This module is the one definition of that comparison: the
advisor's `avoid-xla` / `enable-xla` evidence, the `jit-compile-part` suggestion and the HTML report all read
it.

The times come from the untimed profiled pass (a few steps under the profiler), not from the timed samples:
they explain a difference the timed pass measured, they do not decide one. Pure functions over Profile records
or their JSON; no TensorFlow import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tfperf import units
from tfperf.figures.thresholds import (
    LAYER_SPLIT_MAX_UNATTRIBUTED,
    LAYER_SPLIT_MIN_RATIO,
    LAYER_SPLIT_MIN_SHARE,
)


def _get(profile: Any, key: str) -> Any:
    if profile is None:
        return None
    if isinstance(profile, dict):
        return profile.get(key)
    value = getattr(profile, key, None)
    return value if value is not None else (getattr(profile, "details", None) or {}).get(key)


def profiled_steps(profile: Any) -> int:
    """How many steps the profiled pass ran (its times are sums over them)."""
    steps = _get(profile, "steps") or _get(profile, "profiled_steps")
    return int(steps) if isinstance(steps, (int, float)) and steps > 0 else 1


# What a split's µs are (ModeSplit.basis, and the words the advisor and the page put before them).
TIMED = "timed step split by profiled op time"
PROFILED = "profiled step"


@dataclass
class LayerTimes:
    """One Keras layer's op self time per profiled step in both modes (µs), and its biggest op in each."""

    layer: str
    function_us: float | None
    xla_us: float | None
    function_forward_us: float | None = None
    function_backward_us: float | None = None
    xla_forward_us: float | None = None
    xla_backward_us: float | None = None
    function_top_op: str | None = None
    xla_top_op: str | None = None

    @property
    def ratio(self) -> float | None:
        """XLA's time over tf.function's (above 1: XLA is slower on this layer)."""
        if not self.function_us or self.xla_us is None:
            return None
        return self.xla_us / self.function_us

    @property
    def change(self) -> str | None:
        """ "faster" / "slower" when XLA changed this layer's time by LAYER_SPLIT_MIN_RATIO or more, "same"
        inside it, None without both times: the one reading of `ratio` that the split, the advisor and the
        page use."""
        r = self.ratio
        if r is None:
            return None
        return (
            "faster" if r <= 1 / LAYER_SPLIT_MIN_RATIO else "slower" if r >= LAYER_SPLIT_MIN_RATIO else "same"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class ModeSplit:
    """The per-layer and per-phase comparison of one job's function and XLA profiles."""

    layers: list[LayerTimes] = field(default_factory=list)
    phases: dict[str, dict[str, float | None]] = field(default_factory=dict)  # {phase: {function_us, xla_us}}
    function_unattributed: float | None = None  # unattributed_share of each profile
    xla_unattributed: float | None = None
    basis: str = PROFILED  # TIMED: each mode's timed step split by its op-time shares; PROFILED: raw

    @property
    def attributed(self) -> bool:
        """Both profiles attribute enough of their op time for a per-layer verdict."""
        return all(
            u is not None and u <= LAYER_SPLIT_MAX_UNATTRIBUTED
            for u in (self.function_unattributed, self.xla_unattributed)
        )

    def faster(self, step_us: float | None = None) -> list[LayerTimes]:
        """Layers XLA made faster by LAYER_SPLIT_MIN_RATIO or more (biggest saving first), each saving at
        least LAYER_SPLIT_MIN_SHARE of `step_us` when given."""
        out = [lt for lt in self.layers if lt.change == "faster" and _material(lt, step_us)]
        return sorted(out, key=lambda lt: (lt.function_us or 0) - (lt.xla_us or 0), reverse=True)

    def slower(self, step_us: float | None = None) -> list[LayerTimes]:
        """Layers XLA made slower by LAYER_SPLIT_MIN_RATIO or more (biggest loss first)."""
        out = [lt for lt in self.layers if lt.change == "slower" and _material(lt, step_us)]
        return sorted(out, key=lambda lt: (lt.xla_us or 0) - (lt.function_us or 0), reverse=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": [lt.to_json() for lt in self.layers],
            "phases": self.phases,
            "basis": self.basis,
            "function_unattributed": self.function_unattributed,
            "xla_unattributed": self.xla_unattributed,
        }


def unattributed_share(profile: Any) -> float | None:
    """The share of a profile's op time in no phase ("other"), an XLA executable's own dispatch (outside every
    HLO op, `compiled_step`) left out of both sides: that is runtime, not an op of some layer."""
    phases = _get(profile, "phases") or {}
    total = sum((v or {}).get("self_time_us") or 0.0 for v in phases.values())
    other = ((phases.get("other") or {}).get("self_time_us")) or 0.0
    dispatch = sum(
        (c or {}).get("outside_hlo_us") or 0.0 for c in (_get(profile, "compiled_step") or {}).values()
    )
    whole = total - dispatch
    return max(other - dispatch, 0.0) / whole if whole > 0 else None


def _material(lt: LayerTimes, step_us: float | None) -> bool:
    if not step_us:
        return True
    return abs((lt.xla_us or 0) - (lt.function_us or 0)) >= LAYER_SPLIT_MIN_SHARE * step_us


def _top_op_name(entry: dict) -> str | None:
    op = entry.get("top_op") or {}
    return op.get("type") or op.get("name")


def op_time_per_step(profile: Any) -> float | None:
    """A profile's op self time per profiled step (µs): every phase's, "other" and an XLA executable's
    dispatch included (they are part of the step), else the layers' sum."""
    phases = _get(profile, "phases") or {}
    total = sum((v or {}).get("self_time_us") or 0.0 for v in phases.values())
    if not total:
        total = sum(e.get("self_time_us") or 0.0 for e in _get(profile, "layers") or [])
    return total / profiled_steps(profile) if total else None


def compare(
    function_profile: Any,
    xla_profile: Any,
    function_step_s: float | None = None,
    xla_step_s: float | None = None,
) -> ModeSplit | None:
    """Per layer and per phase, µs per step in each mode; None unless both profiles split by layer.

    With the modes' timed steps (`*_step_s`, the results' medians) each mode's timed step is split by its
    profiled op-time shares, so a mode's layers sum to its timed step: the profiled pass runs slower than the
    timed one, by a different factor per mode (measured here: a small CNN's tf.function steps ran 3.2x slower
    under the profiler, its XLA steps 1.02x), and graph ops that run at the same time on the inter-op threads
    add up past the wall clock. Without them, µs per profiled step (`basis`)."""
    fn_layers, xla_layers = _get(function_profile, "layers"), _get(xla_profile, "layers")
    if not fn_layers or not xla_layers:
        return None

    def scale(profile: Any, step_s: float | None) -> tuple[float, bool]:
        per_step = op_time_per_step(profile)
        if step_s and per_step:
            return step_s * 1e6 / (per_step * profiled_steps(profile)), True
        return 1 / profiled_steps(profile), False

    (fs, f_timed), (xs, x_timed) = scale(function_profile, function_step_s), scale(xla_profile, xla_step_s)

    def per_step(v: Any, factor: float) -> float | None:
        return round(v * factor, 3) if isinstance(v, (int, float)) else None

    fn_by = {e["layer"]: e for e in fn_layers}
    xla_by = {e["layer"]: e for e in xla_layers}
    split = ModeSplit(
        function_unattributed=unattributed_share(function_profile),
        xla_unattributed=unattributed_share(xla_profile),
        basis=TIMED if f_timed and x_timed else PROFILED,
    )
    if not (f_timed and x_timed):  # one basis for both modes, or the comparison means nothing
        fs, xs = 1 / profiled_steps(function_profile), 1 / profiled_steps(xla_profile)
    for name in dict.fromkeys([*fn_by, *xla_by]):
        f, x = fn_by.get(name, {}), xla_by.get(name, {})
        split.layers.append(
            LayerTimes(
                layer=name,
                function_us=per_step(f.get("self_time_us"), fs),
                xla_us=per_step(x.get("self_time_us"), xs),
                function_forward_us=per_step(f.get("forward_us"), fs),
                function_backward_us=per_step(f.get("backward_us"), fs),
                xla_forward_us=per_step(x.get("forward_us"), xs),
                xla_backward_us=per_step(x.get("backward_us"), xs),
                function_top_op=_top_op_name(f),
                xla_top_op=_top_op_name(x),
            )
        )
    fp, xp = _get(function_profile, "phases") or {}, _get(xla_profile, "phases") or {}
    for phase in dict.fromkeys([*fp, *xp]):
        split.phases[phase] = {
            "function_us": per_step((fp.get(phase) or {}).get("self_time_us"), fs),
            "xla_us": per_step((xp.get(phase) or {}).get("self_time_us"), xs),
        }
    return split


def split_of(fn: Any, xla: Any) -> ModeSplit | None:
    """The split of a function result and its XLA twin, each mode's timed median split by its profile: the one
    call the advisor and the page make."""
    return compare(fn.profile, xla.profile, fn.median_s, xla.median_s)


def describe(lt: LayerTimes) -> str:
    """ "conv_1 (mostly Conv2D) takes 9.8 ms under XLA vs 3.1 ms in the graph" (per profiled step)."""
    op = lt.xla_top_op or lt.function_top_op
    what = f"{lt.layer} (mostly {op})" if op else lt.layer
    return f"{what} takes {_duration(lt.xla_us)} under XLA vs {_duration(lt.function_us)} in the graph"


def _duration(us: float | None) -> str:
    return units.seconds(us / 1e6 if us is not None else None)
