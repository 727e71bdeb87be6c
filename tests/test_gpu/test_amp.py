"""Mixed-precision (fp16, bf16) training steps are finite, and autocast really ran."""
import contextlib

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.structures import DataSample

from mmcnv2_tools.benchmark import OURS, build_ours
from tests.test_gpu.utils import ROOT, image_size
from tests.test_gpu.test_detectors import build_detector

DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16}


def amp_wrapper(model, device, dtype):
    """mmengine's AmpOptimWrapper on a GPU (what ``--amp`` builds); on the CPU, where it
    refuses to run, a plain wrapper inside CPU autocast (bf16 only)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if device.type == 'cuda':
        # dynamic loss scale from 2**10: a first scale of 2**16 overflows and skips steps
        return AmpOptimWrapper(optimizer=optimizer, dtype=dtype,
                               loss_scale=dict(init_scale=2.**10)), contextlib.nullcontext()
    if dtype == 'float16':
        pytest.skip('fp16 autocast is a GPU test')
    return OptimWrapper(optimizer), torch.autocast('cpu', dtype=DTYPES[dtype])


def conv_output_dtypes(model):
    """Record the output dtype of every convolution during a step."""
    seen = set()
    handles = [m.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
               for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return seen, handles


def train_steps(model, data, wrapper, context, dtype, steps=3):
    seen, handles = conv_output_dtypes(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with context:
        for _ in range(steps):
            log_vars = model.train_step(data, wrapper)
            assert torch.isfinite(log_vars['loss']), log_vars
    for h in handles:
        h.remove()
    assert DTYPES[dtype] in seen, f'no convolution ran in {dtype}: {seen}'
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters()
               if p.requires_grad), 'the optimizer did not step'


@pytest.mark.parametrize('dtype', DTYPES)
def test_amp_classifier_training_steps(dtype, device):
    # the training form (dense weights, masks), pruned to its final masks
    model = build_ours(OURS['CondenseNetV2-C'][0], ROOT)['training'].to(device).train()
    wrapper, context = amp_wrapper(model, device, dtype)
    side, batch = image_size(device, cuda=224, cpu=64), image_size(device, cuda=32, cpu=4)
    data = dict(inputs=[torch.randint(0, 256, (3, side, side), dtype=torch.uint8)
                        for _ in range(batch)],
                data_samples=[DataSample().set_gt_label(i % 1000) for i in range(batch)])
    train_steps(model, data, wrapper, context, dtype)


@pytest.mark.parametrize('dtype', DTYPES)
def test_amp_retinanet_training_steps(dtype, det_device):
    from mmdet.testing import demo_mm_inputs
    model = build_detector('configs/retinanet_cnv2_c.py', det_device).train()
    wrapper, context = amp_wrapper(model, det_device, dtype)
    side = image_size(det_device, cuda=512, cpu=128)
    train_steps(model, demo_mm_inputs(2, [[3, side, side]] * 2, num_items=[3, 2]), wrapper,
                context, dtype)
