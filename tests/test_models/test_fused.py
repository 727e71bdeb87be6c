"""The inference-only fused form equals the training form (1e-5 relative), for every arch."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS

from mmcnv2.models import (CondenseNetV2, SFRShuffleNetV2, SFRShuffleNetV2Plus,
                           fuse_for_inference, switch_model_to_deploy)
from mmcnv2.models.deploy import sparse_layers
from mmcnv2.models.layers import FusedSFRDenseStage, fused_dense_stage
from tests.conftest import randomize_bn, requires_ops


def trained_like(model):
    """Random weights and BN stats, every sparse layer pruned to its end (random masks)."""
    model.init_weights()
    randomize_bn(model)
    for _, m in sparse_layers(model):
        if not m.deploy:  # the detection configs fine-tune the deploy form
            m.sparsify(1.0)
    return model.eval()


def assert_same(outs, refs):
    for o, r in zip(outs, refs):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))


CUSTOM = dict(depths=(2, 3), growth_rates=(8, 16), condense_factor=4, sparse_factor=2,
              groups=2, bottleneck=4, stem_stride=2, hswish_from=1, se_from=1)


def arch_case(arch, seed):
    """A trained-like CondenseNetV2 ``arch`` with every stage out, a batch of 2, the stages."""
    torch.manual_seed(seed)
    stages = 3 if arch.startswith('cifar') else 2 if arch == 'custom' else 5
    model = trained_like(CondenseNetV2(CUSTOM if arch == 'custom' else arch,
                                       out_indices=tuple(range(stages))))
    size = (32, 35) if arch.startswith('cifar') else (97, 131)
    return model, torch.randn(2, 3, *size), stages


@pytest.mark.parametrize('dense_below', [None, 0, 10**6], ids=['measured', 'grouped', 'dense'])
@pytest.mark.parametrize('arch', ['a', 'b', 'c', 'cifar110', 'cifar146', 'custom'])
def test_fused_condensenet_v2_equals_training_form(arch, dense_below):
    model, x, stages = arch_case(arch, seed=2)
    with torch.no_grad():
        ref = model(x)
        fused = fuse_for_inference(switch_model_to_deploy(model) and model, dense_below)
        assert sum(isinstance(m, FusedSFRDenseStage) for m in fused.modules()) == stages
        assert_same(fused(x), ref)
        assert_same(fused(x[:1]), [r[:1] for r in ref])  # batch 1 takes other kernels


@pytest.mark.parametrize('arch', ['a', 'c', 'cifar146', 'custom'])
@requires_ops
def test_fused_backends_agree(arch, recwarn):
    """TorchScript runs the Python loop's ATen calls: bit-identical outputs; the C++ loop
    makes them too, except its own 3x3 kernel (8 groups, maps at least 20 wide: for A and C
    here stages 0-1), equal up to float rounding. Both batch kernels, every path; all
    inference-only; PyTorch's TorchScript deprecation warning is not passed on."""
    model, x, _ = arch_case(arch, seed=4)
    with torch.no_grad():
        ref = model(x)
        switch_model_to_deploy(model)
        for dense_below in (None, 0, 10**6):  # measured, all grouped, all dense
            fused = {backend: fuse_for_inference(copy.deepcopy(model), dense_below, backend)
                     for backend in ('python', 'cpp', 'torchscript')}
            assert all(s.backend == 'cpp' for s in fused['cpp'].stages)
            assert all(isinstance(s.body, torch.jit.ScriptModule)
                       for s in fused['torchscript'].stages)
            kernel = [layer.kernel3x3 for s in fused['cpp'].stages for layer in s.layers]
            assert any(kernel) == (arch in ('a', 'c'))  # 8 groups (B, CIFAR: 6 or 4)
            for batch in (x, x[:1]):
                want = fused['python'](batch)
                for got, exp in zip(fused['torchscript'](batch), want):
                    assert torch.equal(got, exp), (dense_below, batch.shape)
                assert_same(fused['cpp'](batch), want)
        assert_same(fused['cpp'](x), ref)
    assert not [w for w in recwarn if 'torch.jit' in str(w.message)]
    for backend in fused.values():
        with pytest.raises(RuntimeError, match='inference-only'):
            backend.train()


@requires_ops
def test_cpp_kernel_on_wide_maps_in_every_stage():
    """The C++ loop's 3x3 kernel runs on maps at least 20 wide: here every stage's, so also
    the SE stages and the grouped 1x1 products' j-major shuffle (both batch kernels)."""
    torch.manual_seed(6)
    model = trained_like(CondenseNetV2('a', out_indices=(0, 1, 2, 3, 4)))
    x = torch.randn(2, 3, 40, 660)  # stage 4: 1 x 20
    with torch.no_grad():
        ref = model(x)
        fused = fuse_for_inference(switch_model_to_deploy(model) and model, backend='cpp')
        layers = [layer for stage in fused.stages for layer in stage.layers]
        assert all(layer.kernel3x3 for layer in layers)
        assert any(layer.with_se for layer in layers) and not all(layer.dense for layer in layers)
        assert_same(fused(x), ref)
        assert_same(fused(x[1:]), [r[1:] for r in ref])


@requires_ops
def test_fused_backend_choice_and_errors(monkeypatch):
    model = CondenseNetV2('a', deploy=True)
    assert {s.backend for s in fuse_for_inference(copy.deepcopy(model)).stages} == {'cpp'}
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'cpp', "
                                         r"'torchscript', 'python'\), got 'jit'"):
        fuse_for_inference(copy.deepcopy(model), backend='jit')
    # without the compiled operators: 'auto' says so and runs Python, 'cpp' refuses
    monkeypatch.setattr(fused_dense_stage, 'extension_error', lambda: 'No module named _ext')
    with pytest.warns(UserWarning, match='compiled operators are not available.*_ext'):
        stages = fuse_for_inference(copy.deepcopy(model)).stages
    assert {s.backend for s in stages} == {'python'}
    with pytest.raises(RuntimeError, match="backend='cpp' needs.*No module named _ext"):
        fuse_for_inference(copy.deepcopy(model), backend='cpp')


@requires_ops
def test_cpp_backend_follows_the_module_to_another_dtype():
    """The C++ loop's cached tensor lists are rebuilt when .to() replaces the buffers; its
    float32 3x3 kernel gives way to oneDNN on the same weights for other dtypes."""
    torch.manual_seed(5)
    model = trained_like(CondenseNetV2('a', out_indices=(0, 1)))
    switch_model_to_deploy(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fused = fuse_for_inference(copy.deepcopy(model), backend='cpp')
        fused(x)
        fused.to(torch.float64)
        python = fuse_for_inference(copy.deepcopy(model), backend='python').to(torch.float64)
        for got, exp in zip(fused(x.double()), python(x.double())):
            assert got.dtype == torch.float64  # float64 precision: not float32's rounding
            torch.testing.assert_close(got, exp, rtol=1e-10, atol=1e-10 * float(exp.abs().max()))


def test_fused_layers_take_both_paths_by_default():
    fused = fuse_for_inference(CondenseNetV2('c', deploy=True).eval())
    dense = [layer.dense for stage in fused.stages for layer in stage.layers]
    assert any(dense) and not all(dense)  # 1x1 products: dense early, grouped late
    groups3x3 = [layer.groups3x3 for stage in fused.stages for layer in stage.layers]
    assert groups3x3[0] == 1 and groups3x3[-1] == 8 and 2 in groups3x3  # 3x3: merged early
    folded = [layer.relu_folded for stage in fused.stages for layer in stage.layers]
    assert folded[0] and not folded[-1]  # ReLU stages fold BN into a max(), h-swish do not


@pytest.mark.parametrize('scale', ['negative', 'zero'])
def test_fused_relu_fold_handles_nonpositive_bn_scales(scale):
    """relu(s * x + b) folds to a max() for s > 0, to the constant relu(b) for s == 0;
    a negative s takes the plain affine + ReLU path."""
    torch.manual_seed(3)
    model = trained_like(CondenseNetV2('a', out_indices=(0, 1)))
    norm = model.stages[1].layers[0].conv1.norm
    norm.weight.data[::3] = -0.7 if scale == 'negative' else 0.0
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        fused = fuse_for_inference(switch_model_to_deploy(model) and model)
        assert fused.stages[1].layers[0].relu_folded == (scale == 'zero')
        assert_same(fused(x), ref)


@pytest.mark.parametrize('cls,arch', [(SFRShuffleNetV2, '0.5x'), (SFRShuffleNetV2, '1.5x'),
                                      (SFRShuffleNetV2Plus, 'small')])
def test_fused_shufflenets_equal_training_form(cls, arch):
    torch.manual_seed(0)
    model = trained_like(cls(arch, out_indices=(0, 1, 2, 3, 4)))
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ref = model(x)
        switch_model_to_deploy(model)
        fused = fuse_for_inference(model)
        outs = fused(x)
    assert fused.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert_same(outs, ref)


def test_fused_classifier_and_detector_from_configs():
    torch.manual_seed(0)
    for config, x in (('configs/imagenet/cnv2_a.py', torch.randn(1, 3, 224, 224)),
                      ('configs/retinanet_cnv2_a.py', torch.randn(1, 3, 160, 224))):
        cfg = Config.fromfile(config)
        cfg.model.backbone.pop('init_cfg', None)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = trained_like(MODELS.build(cfg.model))
        with torch.no_grad():
            ref = model(x, mode='tensor')
            switch_model_to_deploy(model)
            out = fuse_for_inference(model)(x, mode='tensor')
        if isinstance(ref, torch.Tensor):
            ref, out = [ref], [out]
        else:  # RetinaNet: (cls scores per level, bbox preds per level)
            ref, out = [t for level in ref for t in level], [t for level in out for t in level]
        assert_same(out, ref)


def test_fuse_refuses_training_form_and_training_mode():
    model = CondenseNetV2('a')
    with pytest.raises(ValueError, match=r'deploy form.*stages\.0\.layers\.0\.conv1'):
        fuse_for_inference(model)
    fused = fuse_for_inference(CondenseNetV2('a', deploy=True))
    # buffers derived from parameters carry no autograd graph (so the model deep-copies)
    assert not any(b.requires_grad for b in fused.buffers())
    copy.deepcopy(fused)
    with pytest.raises(RuntimeError, match='inference-only'):
        fused.train()
    with pytest.raises(ValueError, match='expected 16 input channels, got 3'):
        fused.stages[0](torch.randn(1, 3, 8, 8))
