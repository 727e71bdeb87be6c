import pytest
import torch
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from mmcnv2.models import CondenseNetV2
from tests.utils import randomize_bn

IMAGENET = {'a': (24, 32, 96, 288, 800), 'b': (24, 72, 216, 600, 1176),
            'c': (48, 144, 400, 1040, 2064)}
CIFAR = {'cifar110': (112, 304, 688), 'cifar146': (144, 400, 912)}


def sparsify_all(model, progress=0.5):
    for _, m in model.sparse_layers():
        m.sparsify(progress)


@pytest.mark.parametrize('arch', ['a', 'b', 'c'])
def test_imagenet_archs_channels_and_strides(arch):
    model = CondenseNetV2(arch, out_indices=(0, 1, 2, 3, 4)).eval()
    assert model.out_channels == IMAGENET[arch]
    assert model.stage_strides == (2, 4, 8, 16, 32)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [
        (1, c, 224 // s, 224 // s) for c, s in zip(IMAGENET[arch], (2, 4, 8, 16, 32))]
    with torch.no_grad():  # odd sizes work (global pooling, floor at each pool)
        outs = model(torch.randn(1, 3, 333, 517))
    assert [tuple(o.shape[2:]) for o in outs] == [(167, 259), (83, 129), (41, 64), (20, 32),
                                                  (10, 16)]


@pytest.mark.parametrize('arch', ['cifar110', 'cifar146'])
def test_cifar_archs(arch):
    model = CondenseNetV2(arch, out_indices=(0, 1, 2)).eval()
    assert model.out_channels == CIFAR[arch]
    assert model.stage_strides == (1, 2, 4)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(2, 112 if arch == 'cifar110' else 144, 32, 32),
                                              (2, CIFAR[arch][1], 16, 16),
                                              (2, CIFAR[arch][2], 8, 8)]
    # no SE and no h-swish in the CIFAR models
    assert not any('se' == n.split('.')[-1] for n, _ in model.named_modules())
    assert not any(isinstance(m, torch.nn.Hardswish) for m in model.modules())


def test_smallest_input():
    model = CondenseNetV2('a').eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 33))[0].shape == (1, 800, 1, 1)


def test_invalid_arguments_name_allowed_values():
    with pytest.raises(ValueError, match=r"\['a', 'b', 'c', 'cifar110', 'cifar146'\]"):
        CondenseNetV2('d')
    with pytest.raises(ValueError, match=r'out_indices.*\[-5, 4\]'):
        CondenseNetV2('a', out_indices=(5, ))
    with pytest.raises(ValueError, match=r'frozen_stages.*\[-1, 5\]'):
        CondenseNetV2('a', frozen_stages=6)
    with pytest.raises(ValueError, match='missing'):
        CondenseNetV2(dict(depths=(1, ), growth_rates=(8, )))


def test_negative_out_indices():
    model = CondenseNetV2('a', out_indices=(-2, -1))
    assert model.out_indices == (3, 4)


def test_custom_arch_dict():
    arch = dict(depths=(1, 2), growth_rates=(8, 16), condense_factor=4, sparse_factor=4,
                groups=4, bottleneck=4, stem_stride=2, hswish_from=1, se_from=1)
    model = CondenseNetV2(arch, out_indices=(0, 1))
    assert model.out_channels == (24, 56)
    assert [o.shape[1] for o in model(torch.randn(1, 3, 64, 64))] == [24, 56]


def test_frozen_stages():
    model = CondenseNetV2('a', frozen_stages=2)
    model.train()
    for p in model.stem.parameters():
        assert not p.requires_grad
    for i, stage in enumerate(model.stages):
        for m in stage.modules():
            if isinstance(m, _BatchNorm):
                assert m.training == (i >= 2)
        for p in stage.parameters():
            assert p.requires_grad == (i >= 2)


def test_norm_eval_and_train_returns_self():
    model = CondenseNetV2('a', norm_eval=True)
    assert model.train() is model
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    assert model.eval() is model
    model = CondenseNetV2('a', norm_eval=False).train()
    assert all(m.training for m in model.modules() if isinstance(m, _BatchNorm))


def test_with_cp_matches_plain_forward_and_backward():
    torch.manual_seed(0)
    a = CondenseNetV2('a', with_cp=False)
    b = CondenseNetV2('a', with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    ya = a(x)[0]
    yb = b(x)[0]
    torch.testing.assert_close(ya, yb)
    ya.sum().backward()
    ga = a.stem.weight.grad.clone()
    a.zero_grad()
    yb.sum().backward()
    torch.testing.assert_close(b.stem.weight.grad, ga, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
def test_registry_builds_from_both_scopes(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(dict(type='CondenseNetV2', arch='a', norm_cfg=dict(type='BN')))
        assert isinstance(model, CondenseNetV2)
        model = registry.build(dict(type='mmcnv2.CondenseNetV2', arch='b'))
        assert isinstance(model, CondenseNetV2)


@pytest.mark.parametrize('arch', ['a', 'b', 'c', 'cifar110', 'cifar146'])
def test_deploy_equals_training_form(arch):
    torch.manual_seed(1)
    model = CondenseNetV2(arch, out_indices=tuple(range(5 if len(arch) == 1 else 3)))
    model.init_weights()
    randomize_bn(model)
    # random masks: each layer's weights differ, so each ends with its own pattern
    sparsify_all(model)
    model.eval()
    size = 224 if len(arch) == 1 else 32
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        out = model(x)
    assert all(m.deploy for _, m in model.sparse_layers())
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))
    # a backbone built with deploy=True has the same structure
    built = CondenseNetV2(arch, deploy=True, out_indices=model.out_indices)
    built.load_state_dict(model.state_dict())
    with torch.no_grad():
        for r, o in zip(out, built.eval()(x)):
            torch.testing.assert_close(o, r, rtol=0, atol=0)


def test_switch_to_deploy_refuses_unfinished_model():
    model = CondenseNetV2('a')
    sparsify_all(model, 0.2)
    with pytest.raises(ValueError, match=r'stages\.0\.layers\.0\.conv1 is at stage 2 of 7'):
        model.switch_to_deploy()
    assert not any(m.deploy for _, m in model.sparse_layers()), 'nothing converted on error'


def test_norm_cfg_switches_to_syncbn_and_gn_and_condenses():
    model = CondenseNetV2('a', norm_cfg=dict(type='SyncBN'))
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    sparsify_all(model)
    model.switch_to_deploy()
    assert all(isinstance(m.norm, torch.nn.SyncBatchNorm) for _, m in model.sparse_layers())
    with torch.no_grad():  # SyncBN in eval mode runs on one CPU process
        assert model.eval()(torch.randn(1, 3, 64, 64))[0].shape == (1, 800, 2, 2)
    gn = CondenseNetV2('a', norm_cfg=dict(type='GN', num_groups=4))
    assert any(isinstance(m, torch.nn.GroupNorm) for m in gn.modules())


def test_block_of_depth_zero_passes_the_stem_through_in_every_form():
    """A first block of depth 0 (the detection demo's: no dense layer at stride 2) outputs the
    stem's features; training, deploy and fused forms agree and the paper count adds nothing
    for it (the stem conv's 3*16*9 multiply-adds per output pixel, then the blocks after it)."""
    import copy

    from mmcnv2.analysis import paper_complexity
    from mmcnv2.models import fuse_for_inference
    arch = dict(depths=(0, 1, 2), growth_rates=(8, 8, 16), condense_factor=4, sparse_factor=4,
                groups=4, bottleneck=4, stem_stride=2, hswish_from=2, se_from=2)
    model = CondenseNetV2(arch, out_indices=(0, 1, 2))
    assert model.out_channels == (16, 24, 56)
    sparsify_all(model, 1.0)
    randomize_bn(model).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(ref[0], model.stem(x))  # the last stage's BN-ReLU is not in stage 0
        deploy = copy.deepcopy(model)
        deploy.switch_to_deploy()
        fused = fuse_for_inference(copy.deepcopy(deploy))
        for form in (deploy, fused):
            for a, b in zip(ref, form(x)):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    one_layer = CondenseNetV2(dict(arch, depths=(1, 1, 2)), deploy=True).eval()
    flops0, _ = paper_complexity(deploy, (3, 64, 64))
    flops1, _ = paper_complexity(one_layer, (3, 64, 64))
    assert flops0 < flops1
    stem = 3 * 16 * 9 * 32 * 32
    no_stage0 = copy.deepcopy(deploy)
    no_stage0.stages[0] = torch.nn.Identity()
    assert flops0 == paper_complexity(no_stage0, (3, 64, 64))[0] and flops0 > stem
