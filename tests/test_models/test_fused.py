"""The inference-only fused form equals the training form (1e-5 relative), for every arch."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS

from mmcnv2.models import (CondenseNetV2, SFRShuffleNetV2, SFRShuffleNetV2Plus,
                           ShuffleNetV2Plus, fuse_for_inference, switch_model_to_deploy)
from mmcnv2.models.deploy import sparse_layers
from mmcnv2.models.layers import FusedSFRDenseStage, InferenceOnly, fused_dense_stage
from tests.utils import randomize_bn, requires_ops

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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
    here stages 0-1), equal up to float rounding; so is the export graph ('onnx': depthwise
    3x3, dense reactivation, no in-place writes). Both batch kernels, every path; all
    inference-only; PyTorch's TorchScript deprecation warning is not passed on. The C++
    loop's batch of 2 runs on 1 thread (image by image) and on more (batched)."""
    model, x, _ = arch_case(arch, seed=4)
    with torch.no_grad():
        ref = model(x)
        switch_model_to_deploy(model)
        for dense_below in (None, 0, 10**6):  # measured, all grouped, all dense
            fused = {backend: fuse_for_inference(copy.deepcopy(model), dense_below, backend)
                     for backend in ('python', 'cpp', 'torchscript', 'onnx')}
            assert all(s.backend == 'cpp' for s in fused['cpp'].stages)
            assert all(isinstance(s.body, torch.jit.ScriptModule)
                       for s in fused['torchscript'].stages)
            kernel = [layer.kernel3x3 for s in fused['cpp'].stages for layer in s.layers]
            assert any(kernel) == (arch in ('a', 'c'))  # 8 groups (B, CIFAR: 6 or 4)
            graph = [layer for s in fused['onnx'].stages for layer in s.layers]
            assert all(layer.groups3x3 == layer.groups for layer in graph)
            assert any(layer.depthwise3x3 and layer.index2.numel() for layer in graph)
            for batch in (x, x[:1]):
                want = fused['python'](batch)
                for got, exp in zip(fused['torchscript'](batch), want):
                    assert torch.equal(got, exp), (dense_below, batch.shape)
                assert_same(fused['cpp'](batch), want)
                assert_same(fused['onnx'](batch), want)
            threads = torch.get_num_threads()
            try:  # on one thread the C++ loop runs a batch image by image
                torch.set_num_threads(1 if threads > 1 else 2)
                assert_same(fused['cpp'](x), fused['python'](x))
            finally:
                torch.set_num_threads(threads)
        assert_same(fused['cpp'](x), ref)
        assert_same(fused['onnx'](x), ref)
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
                                         r"'torchscript', 'python', 'onnx'\), got 'jit'"):
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


@pytest.mark.parametrize('cls,arch', [(SFRShuffleNetV2, '0.5x'), (SFRShuffleNetV2, '1.0x'),
                                      (SFRShuffleNetV2, '1.5x'), (SFRShuffleNetV2Plus, 'small'),
                                      (SFRShuffleNetV2Plus, 'medium'),
                                      (ShuffleNetV2Plus, 'medium')])
def test_fused_shufflenets_equal_training_form(cls, arch):
    torch.manual_seed(0)
    model = trained_like(cls(arch, out_indices=(0, 1, 2, 3, 4)))
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        if sparse_layers(model):  # ShuffleNetV2+ has no SFR: nothing to condense
            switch_model_to_deploy(model)
        fused = fuse_for_inference(model)
        outs = fused(x)
    assert fused.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert_same(outs, ref)


def test_fused_classifier_and_detector_from_configs():
    torch.manual_seed(0)
    for config, x in (('configs/imagenet/cnv2_a.py', torch.randn(1, 3, 224, 224)),
                      ('configs/retinanet_cnv2_a.py', torch.randn(1, 3, 160, 224))):
        cfg = Config.fromfile(osp.join(ROOT, config))
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


def _build(config):
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.deploy = True
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    return model, (lambda m, x: m(x, mode='tensor'))


#: Every kind of model fuse_for_inference returns, built in deploy form, and its call.
INFERENCE_ONLY_CASES = {
    'CondenseNetV2': lambda: (CondenseNetV2(CUSTOM, out_indices=(0, 1), deploy=True), None),
    'SFRShuffleNetV2': lambda: (SFRShuffleNetV2('0.5x', out_indices=(0, 4), deploy=True), None),
    'SFRShuffleNetV2Plus': lambda: (SFRShuffleNetV2Plus('small', deploy=True), None),
    'ShuffleNetV2Plus': lambda: (ShuffleNetV2Plus('small'), None),
    'classifier': lambda: _build('configs/imagenet/sfr_shufflenetv2_0.5x.py'),
    'detector': lambda: _build('configs/retinanet_cnv2_a.py'),
}


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in _flat(item)]


@pytest.mark.parametrize('case', sorted(INFERENCE_ONLY_CASES))
def test_every_fused_model_refuses_training_mode_and_autograd(case):
    """Whatever its architecture, the fused form has no training mode and computes no
    gradients: .train() and a call that would need gradients raise (before, a fused
    CondenseNetV2 returned outputs without a graph, backward() succeeded and x.grad stayed
    None, and a fused SFR-ShuffleNetV2 trained with BN in training mode)."""
    model, call = INFERENCE_ONLY_CASES[case]()
    call = call or (lambda m, x: m(x))
    fused = fuse_for_inference(model, backend='python')
    assert fused is model and not fused.training
    assert not any(p.requires_grad for p in fused.parameters())
    inner = [m for m in fused.modules() if isinstance(m, InferenceOnly)]
    assert fused in inner
    for module in inner:  # the model, its sparse backbone, its fused stages
        with pytest.raises(RuntimeError, match=r'is inference-only .* no training mode'):
            module.train()
    assert not any(m.training for m in fused.modules()), 'a refused train() changes nothing'
    assert fused.eval() is fused and fused.train(False) is fused
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    with pytest.raises(RuntimeError, match='is inference-only: it computes no gradients'):
        call(fused, x)
    next(fused.parameters()).requires_grad_(True)  # a parameter asking for gradients
    with pytest.raises(RuntimeError, match='computes no gradients'):
        call(fused, x.detach())
    with torch.no_grad():
        outs = _flat(call(fused, x))
    with torch.inference_mode():
        torch.testing.assert_close(_flat(call(fused, x.detach())), outs)
    assert outs and not any(o.requires_grad for o in outs)
    fused.requires_grad_(False)
    assert all(not o.requires_grad for o in _flat(call(fused, x.detach())))  # grad mode, no grad
    copy.deepcopy(fused).eval()


@pytest.mark.parametrize('backend', ['python', pytest.param('cpp', marks=requires_ops)])
@pytest.mark.parametrize('case', ['CondenseNetV2', 'SFRShuffleNetV2', 'detector'])
def test_fused_form_runs_at_batch_0_like_the_deploy_form(case, backend):
    """(mmpretrain's GlobalAveragePooling neck fails at batch 0 in any form: no classifier.)"""
    model, call = INFERENCE_ONLY_CASES[case]()
    call = call or (lambda m, x: m(x))
    x = torch.randn(0, 3, 64, 96)
    with torch.no_grad():
        ref = _flat(call(model.eval(), x))
        fused = fuse_for_inference(copy.deepcopy(model), dense_below=0, backend=backend)
        outs = _flat(call(fused, x))
        assert any(isinstance(m, FusedSFRDenseStage) for m in fused.modules()) == (
            case in ('CondenseNetV2', 'detector'))
        assert [o.shape for o in outs] == [r.shape for r in ref] and ref
        assert all(r.numel() == 0 for r in ref)
        # and the grouped and dense 1x1 paths of the stage itself
        for stage in [m for m in fused.modules() if isinstance(m, FusedSFRDenseStage)]:
            assert stage(torch.randn(0, stage.in_channels, 8, 8)).shape == (
                0, stage.out_channels, 4 if stage.body.downsample else 8,
                4 if stage.body.downsample else 8)


@pytest.mark.parametrize('backend', ['python', pytest.param('cpp', marks=requires_ops)])
def test_conversion_and_fusion_keep_a_batchnorm_eps(backend):
    """BN with eps 1e-3 (not the default 1e-5): the deploy form's condensed BNs and the fused
    form's folded affines must use it (with 1e-5 the outputs differ by about 1e-3
    relative here)."""
    torch.manual_seed(7)
    model = trained_like(CondenseNetV2(CUSTOM, out_indices=(0, 1),
                                       norm_cfg=dict(type='BN', eps=1e-3)))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.01, 0.1)  # small variances: eps matters
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        ref = model(x)
        switch_model_to_deploy(model)
        assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert_same(model(x), ref)
        assert_same(fuse_for_inference(model, backend=backend)(x), ref)


def test_groupnorm_models_convert_and_refuse_to_fuse():
    """GroupNorm normalises over groups of channels, so the deploy form cannot condense it
    with the inputs the learned group convolution keeps (as it does BatchNorm): it keeps
    the norm over every input and selects after it. The fused form folds BatchNorm only:
    for GN it says so."""
    torch.manual_seed(8)
    gn = dict(type='GN', num_groups=4)
    model = CondenseNetV2(CUSTOM, out_indices=(0, 1), norm_cfg=gn)
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    for _, m in sparse_layers(model):
        m.sparsify(1.0)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        ref = model.eval()(x)
        switch_model_to_deploy(model)
        assert_same(model(x), ref)
        built = CondenseNetV2(CUSTOM, out_indices=(0, 1), norm_cfg=gn, deploy=True)
        built.load_state_dict(model.state_dict(), strict=True)  # the deploy checkpoint loads
        assert_same(built.eval()(x), ref)
        with pytest.raises(TypeError, match='only BatchNorm with running stats can be fused, '
                                            'got GroupNorm'):
            fuse_for_inference(model)
