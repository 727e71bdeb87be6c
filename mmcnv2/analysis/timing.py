"""Timing forward passes, fixing the process's memory policy, and recording the machine.

Latency is the median of repeated single passes after a warm-up, with the
25th/75th percentiles as spread (:func:`time_forward`). Several models timed
side by side run in rounds, one pass of each per round
(:func:`time_round_robin`), so that a drift of the machine's speed hits them
alike and their ratio compares numbers taken under the same conditions.

glibc's malloc hands freed memory back to the OS once more than a threshold is
free at the top of the heap, and that threshold moves with the largest block
freed so far: a model's latency then depends on what ran before it in the
process, and a model whose working set crosses the threshold pays a page fault
per 4 KiB touched on every pass (on a VM ~10 us each; CondenseNetV2-C at 224 x
224: 1300 faults, ~15 ms of a ~45 ms pass). :func:`set_malloc_policy` fixes the
policy first (``'retain'``: freed memory stays in the process, as with
``MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=33554432`` in the
environment, or jemalloc/tcmalloc, which PyTorch's CPU tuning guide
recommends); ``'default'`` measures glibc as it comes.
"""
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List, Sequence

import torch


@dataclass
class Timing:
    """Milliseconds per forward pass: median and spread of ``runs`` passes."""
    median: float
    p25: float
    p75: float
    runs: int

    def __str__(self):
        return f'{self.median:.1f} ({self.p25:.1f}-{self.p75:.1f})'


def time_forward(fn: Callable[[], object], warmup: int = 3, min_runs: int = 7,
                 max_runs: int = 30, budget_s: float = 2.0) -> Timing:
    """Time ``fn()``: ``warmup`` passes, then between ``min_runs`` and ``max_runs``
    timed passes, stopping early once ``budget_s`` seconds are spent.

    Example:
        >>> t = time_forward(lambda: sum(range(1000)), budget_s=0.01)
        >>> t.runs >= 7 and t.p25 <= t.median <= t.p75
        True
    """
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs
                                     or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _timing(times)


def time_round_robin(fns: Sequence[Callable[[], object]], warmup: int = 3, min_runs: int = 7,
                     max_runs: int = 30, budget_s: float = 2.0) -> List[Timing]:
    """Time every ``fns[i]()`` in rounds of one pass each, as :func:`time_forward`
    does one: ``warmup`` rounds, then between ``min_runs`` and ``max_runs``
    timed rounds, stopping early once ``budget_s`` seconds per function are spent.

    Example:
        >>> fast, slow = time_round_robin([lambda: None, lambda: sum(range(10**5))],
        ...                               budget_s=0.01)
        >>> fast.runs == slow.runs >= 7
        True
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    start, budget = time.perf_counter(), budget_s * len(fns)
    while len(times[0]) < max_runs and (len(times[0]) < min_runs
                                        or time.perf_counter() - start < budget):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    return [_timing(ts) for ts in times]


def _timing(times: List[float]) -> Timing:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return Timing(statistics.median(times), q[0], q[2], len(times))


MALLOC_POLICIES = ('retain', 'default')


def set_malloc_policy(policy: str) -> str:
    """Fix how this process's ``malloc`` returns freed memory (see the module docstring).

    Args:
        policy (str): ``'retain'``: glibc keeps freed memory (trim threshold
            256 MiB, blocks up to 32 MiB from the heap), so passes do not
            page-fault and timings do not depend on what ran before;
            ``'default'``: leave the C library as it is.

    Returns:
        str: What the process runs with, for the record.
    """
    if policy not in MALLOC_POLICIES:
        raise ValueError(f'malloc must be one of {list(MALLOC_POLICIES)}, got {policy!r}')
    env = {k: os.environ[k] for k in ('MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_',
                                      'LD_PRELOAD') if os.environ.get(k)}
    if policy == 'default':
        return 'as started' + (f' ({env})' if env else ' (C library defaults)')
    import ctypes
    import ctypes.util
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
    except (OSError, AttributeError):
        return 'as started (no glibc mallopt here)'
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if mallopt(M_TRIM_THRESHOLD, 256 << 20) != 1 or mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1:
        return 'as started (mallopt refused)'
    return 'glibc retain: M_TRIM_THRESHOLD=256MiB, M_MMAP_THRESHOLD=32MiB'


def machine_info() -> dict:
    """CPU, cores and library versions of this run."""
    import mmcv
    import mmdet
    import mmengine
    import mmpretrain

    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info = dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(),
                torch=torch.__version__, mmcv=mmcv.__version__, mmengine=mmengine.__version__,
                mmpretrain=mmpretrain.__version__, mmdet=mmdet.__version__,
                torch_threads_default=torch.get_num_threads())
    try:
        import onnxruntime
        info['onnxruntime'] = onnxruntime.__version__
    except ImportError:
        info['onnxruntime'] = None
    try:
        import openvino
        info['openvino'] = openvino.__version__.split('-')[0]
    except ImportError:
        info['openvino'] = None
    return info
