"""SparsifyHook through a short run on the device: masks stay there, deploy equals training."""
import copy

import pytest
import torch

from mmcnv2.models.deploy import sparse_layers, switch_model_to_deploy
from tests.runner_utils import run, tiny_cfg
from tests.test_gpu.utils import relative_error


def test_sparsify_hook_short_run(runner_device, tmp_path, exact_fp32):
    runner, recorder = run(tiny_cfg(tmp_path, iters=8, checkpoint_interval=10**6))
    model = runner.model
    layers = sparse_layers(model)
    assert layers
    for masks in recorder.masks:  # after every iteration
        assert {m.device.type for m in masks.values()} == {runner_device.type}
    changed = sum(any(not torch.equal(a[k], b[k]) for k in a)
                  for a, b in zip(recorder.masks, recorder.masks[1:]))
    assert changed >= 2, 'the masks must change during the run'
    for name, layer in layers:  # fully sparse at the end: every group keeps 1/F of its inputs
        assert layer.mask.device.type == layer.stage.device.type == runner_device.type, name
        assert layer.is_fully_sparse, name
        assert float(layer.mask.float().mean()) == pytest.approx(1 / layer.factor), name
    model.eval()
    deploy = copy.deepcopy(model)
    switch_model_to_deploy(deploy)
    x = torch.randn(8, 3, 8, 8, device=runner_device)
    with torch.inference_mode():
        ref, out = model(x, mode='tensor'), deploy(x, mode='tensor')
    assert out.device.type == runner_device.type
    assert relative_error(out, ref) <= 1e-4
