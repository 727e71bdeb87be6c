"""Let mmengine runner checkpoints load with ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7
does not pass the argument, so its runner checkpoints (``--resume``,
``load_from``, ``init_detector``, ``tools/test.py``) fail on the objects in
their ``meta``/``message_hub``. Instead of switching the protection off
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), we allow exactly the globals those
checkpoints contain: mmengine's ``HistoryBuffer`` and the numpy array/scalar
reconstruction helpers. mmengine also pickles ``HistoryBuffer``'s statistics
methods as ``getattr(HistoryBuffer, 'mean')``; rather than allowing the
builtin ``getattr`` (which would reach anything), the name
``__builtin__.getattr`` is bound to :func:`history_buffer_getattr`, which only
resolves those statistics methods and refuses everything else.
"""
import pickle

import torch


def history_buffer_getattr(obj, name):
    """``getattr`` restricted to the statistics methods of ``HistoryBuffer``."""
    from mmengine.logging.history_buffer import HistoryBuffer

    # the defaults are registered lazily, by the first HistoryBuffer created
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) in a weights-only load: only '
        'HistoryBuffer statistics methods are allowed')


def checkpoint_safe_globals():
    """The globals an mmengine 0.10 runner checkpoint pickles."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *dtypes,
            (history_buffer_getattr, '__builtin__.getattr'),
            (history_buffer_getattr, 'builtins.getattr')]


def register_checkpoint_safe_globals():
    """Add :func:`checkpoint_safe_globals` to torch's weights-only allow list."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
