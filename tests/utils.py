"""Helpers of the tests: model weights that make comparisons meaningful, the paper's rounding
of parameter counts, and the marker of the compiled-operator tests."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS

from mmcnv2.models.deploy import sparse_layers

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def randomize_bn(module, generator=None):
    """Give every BatchNorm non-trivial affine parameters and running stats."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return module


def trained_checkpoint(config, path, progress=1.0):
    """A training-form checkpoint of ``config`` (relative to the repository, or absolute):
    random weights and BN stats, masks at ``progress``."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.deploy = False
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    randomize_bn(model)
    for _, m in sparse_layers(model):
        m.sparsify(progress)
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


def assert_params_match(ours_m, paper_m):
    """Params (millions) within 1.5% of the paper, or within the rounding of its
    one-decimal figure (e.g. 1.374M is printed 1.4M: 1.8% off, but the same number)."""
    assert abs(ours_m / paper_m - 1) <= 0.015 or abs(ours_m - paper_m) <= 0.05, (ours_m, paper_m)


#: Tests of mmcnv2's compiled operators: they run unless the install skipped them on
#: purpose (MMCNV2_WITH_OPS=0); a build that failed otherwise fails these tests.
requires_ops = pytest.mark.skipif(os.environ.get('MMCNV2_WITH_OPS') == '0',
                                  reason='installed with MMCNV2_WITH_OPS=0')
