"""Memory of one job: a real peak where one can be read, and the growth of the resident memory under its own
name.

- On a GPU, the allocator's peak (`tf.config.experimental.get_memory_info(...)["peak"]`, reset before the
  job): the most bytes TensorFlow held at any moment of the job. That is `Result.peak_memory_bytes`.
- On the CPU there is no allocator peak to read: TensorFlow's CPU allocator keeps no byte counts (its stats
  need tcmalloc; `get_memory_info("CPU:0")` raises "Allocator stats not available"). What the process can see
  is its resident high-water mark (VmHWM, reset through /proc/self/clear_refs), and the growth of that mark
  over the job is not the job's peak: memory an earlier job of the same worker freed is reused without the
  resident set growing (576 KiB for a transformer training step whose profile showed 25 MiB in use). So on the
  CPU `peak_bytes()` is None, and that growth is `rss_growth_bytes()`, named for what it is: a lower bound of
  the new resident memory the job needed, not what it used.

`tfperf.figures.measures.peak_memory` is the one definition of the peak every output shows: the device
allocator's, else the peak of the profiler's memory profile (xprof builds it from the allocation events in the
profiled pass's trace; on the CPU TensorFlow writes them only with oneDNN on). Neither: no peak is shown.
"""

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
    """reset() before the job, peak_bytes() (and rss_growth_bytes()) after it."""

    def __init__(self, device: str):
        self.device = device
        self._baseline_rss_kib: int | None = None

    @property
    def has_allocator_peak(self) -> bool:
        return self.device.startswith("gpu")

    def reset(self) -> None:
        if self.has_allocator_peak:
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats(self.device.upper())
        # Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0), so the mark
        # after the job is this job's, not the worker's lifetime one.
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            pass
        self._baseline_rss_kib = _status_kib("VmRSS")

    def peak_bytes(self) -> int | None:
        """The device allocator's peak during the job; None where there is no allocator peak (the CPU)."""
        if not self.has_allocator_peak:
            return None
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info(self.device.upper())["peak"])

    def rss_growth_bytes(self) -> int | None:
        """How far the process's resident high-water mark rose above its resident memory at reset(): not a
        peak of what the job used (freed memory is reused without growing it). None where /proc is not
        readable."""
        peak = _status_kib("VmHWM")
        if peak is None or self._baseline_rss_kib is None:
            return None
        return max(0, peak - self._baseline_rss_kib) * 1024
