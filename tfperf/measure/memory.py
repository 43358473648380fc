"""Peak memory of one job: the device's peak on a GPU, the worker's peak RSS growth on the CPU."""
from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """reset() before the job, peak_bytes() after it."""

    def __init__(self, device: str):
        self.device = device
        self._baseline_rss_kib: int | None = None

    def reset(self) -> None:
        if self.device.startswith("gpu"):
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats(self.device.upper())
            return
        # Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0), so the peak
        # after the job is this job's, not the worker's lifetime peak.
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            pass
        self._baseline_rss_kib = _status_kib("VmRSS")

    def peak_bytes(self) -> int | None:
        if self.device.startswith("gpu"):
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info(self.device.upper())["peak"])
        peak = _status_kib("VmHWM")
        if peak is None or self._baseline_rss_kib is None:
            return None
        return max(0, peak - self._baseline_rss_kib) * 1024
