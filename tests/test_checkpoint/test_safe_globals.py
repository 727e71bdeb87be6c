import io
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub


def test_runner_checkpoint_objects_load_weights_only():
    hub = MessageHub.get_instance('safe_globals_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25)
    buf = io.BytesIO()
    import numpy as np
    torch.save(dict(message_hub=hub.state_dict(), seed=np.int64(3), arr=np.ones(3),
                    state_dict=dict(w=torch.ones(2))), buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    restored = ck['message_hub']['log_scalars']['train/loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.mean() == pytest.approx(0.375)
    assert int(ck['seed']) == 3


class _Evil:
    # an allowed class, but a name that is not a statistics method
    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _Foreign:
    pass


def test_getattr_is_only_allowed_for_history_buffer_statistics():
    buf = io.BytesIO()
    torch.save({'x': _Evil()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer statistics'):
        torch.load(buf, weights_only=True)


def test_weights_only_protection_stays_on():
    import os
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') in (None, '', '0')
    buf = io.BytesIO()
    torch.save({'x': _Foreign()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf, weights_only=True)
