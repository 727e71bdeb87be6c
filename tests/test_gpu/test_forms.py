"""Deploy and fused forms equal the training form on the device (fp32, 1e-4 relative)."""
import copy

import pytest
import torch

from mmcnv2.models import fuse_for_inference
from mmcnv2_tools.benchmark import OURS, build_ours
from tests.utils import randomize_bn
from tests.test_gpu.utils import ROOT, image_size, relative_error

MODELS = ['CondenseNetV2-A', 'CondenseNetV2-B', 'CondenseNetV2-C', 'SFR-ShuffleNetV2-1.0x']


@pytest.mark.parametrize('name', MODELS)
def test_deploy_and_fused_forms_equal_training_form(name, device, exact_fp32):
    forms = build_ours(OURS[name][0], ROOT)  # fully sparsified training form, deploy form
    training = randomize_bn(forms['training']).to(device).eval()
    deploy = copy.deepcopy(training)
    from mmcnv2.models.deploy import switch_model_to_deploy
    switch_model_to_deploy(deploy)
    fused = {backend: fuse_for_inference(copy.deepcopy(deploy), backend=backend)
             for backend in ('auto', 'python')}
    side = image_size(device, cuda=224, cpu=64)
    x = torch.randn(4, 3, side, side, device=device)
    with torch.inference_mode():
        ref = training(x, mode='tensor')
        outs = dict(deploy=deploy(x, mode='tensor'),
                    **{f'fused-{b}': m(x, mode='tensor') for b, m in fused.items()})
    for form, out in outs.items():
        assert out.device.type == device.type, form
        assert relative_error(out, ref) <= 1e-4, (form, relative_error(out, ref))
