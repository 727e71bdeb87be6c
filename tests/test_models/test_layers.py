import numpy as np
import pytest
import torch

from mmcnv2.models.layers import LearnedGroupConv, SparseFeatureReactivation, stage_at
from tests.utils import randomize_bn


@pytest.mark.parametrize('factor', [2, 4, 6, 8])
def test_stage_at_follows_paper_schedule(factor):
    # stage i ends at progress i / (2 (F-1)); full sparsity from 0.5 on
    for i in range(factor):
        p = i / (2 * (factor - 1))
        assert stage_at(p, factor) == i
        if i:
            assert stage_at(p - 1e-6, factor) == i - 1
    assert stage_at(0.5, factor) == factor - 1
    assert stage_at(3.0, factor) == factor - 1


@pytest.mark.parametrize('bad', [-0.1, float('nan'), float('inf'), 'half', None])
def test_stage_at_rejects_bad_progress(bad):
    with pytest.raises(ValueError, match='progress'):
        stage_at(bad, 4)


def _lgc(I=32, O=48, C=4, G=4, k=1):
    return randomize_bn(LearnedGroupConv(I, O, C, G, kernel_size=k))


def _sfr(I=16, O=32, S=4, G=4, k=1):
    return randomize_bn(SparseFeatureReactivation(I, O, S, G, kernel_size=k))


def _inputs_kept_per_group(lgc):
    keep = lgc.group_keep()
    return keep.sum(1)


@pytest.mark.parametrize('progresses', [[0.5], [0.1, 0.2, 0.5], [0.05 * i for i in range(1, 21)],
                                        [0.3, 0.9]])
def test_lgc_reaches_exact_density_on_any_schedule(progresses):
    lgc = _lgc(C=4, G=4)
    for p in progresses:
        lgc.sparsify(p)
    assert int(lgc.stage) == 3
    assert lgc.density == pytest.approx(1 / 4)
    # every group keeps exactly I / C inputs, the same for all of the group's outputs
    assert _inputs_kept_per_group(lgc).tolist() == [32 // 4] * 4
    mask = lgc.mask
    for o in range(48):
        assert torch.equal(mask[o], mask[o % 4])


def test_sfr_reaches_exact_density_per_group():
    sfr = _sfr(I=16, O=32, S=4, G=4)
    sfr.sparsify(0.5)
    assert sfr.density == pytest.approx(1 / 4)
    # input group g (inputs g, g+G, ...) updates exactly O / S outputs
    for j in range(16):
        assert int(sfr.mask[:, j].sum()) == 32 // 4
        assert torch.equal(sfr.mask[:, j], sfr.mask[:, j % 4])


def test_one_call_equals_stepwise_calls():
    a, b = _lgc(C=8, G=8, I=64, O=64), None
    b = LearnedGroupConv(64, 64, 8, 8)
    b.load_state_dict(a.state_dict())
    for i in range(1, 8):
        a.sparsify(i / 14)
    b.sparsify(0.5)
    assert torch.equal(a.mask, b.mask)


def test_drops_least_important_inputs_first():
    lgc = LearnedGroupConv(8, 4, condense_factor=2, groups=2)
    with torch.no_grad():
        lgc.conv.weight.zero_()
        # group 0 = outputs 0, 2; group 1 = outputs 1, 3
        lgc.conv.weight[0, :, 0, 0] = torch.tensor([8., 7, 6, 5, 4, 3, 2, 1])
        lgc.conv.weight[1, :, 0, 0] = torch.tensor([1., 2, 3, 4, 5, 6, 7, 8])
    lgc.sparsify(0.5)
    assert lgc.group_keep()[0].tolist() == [True] * 4 + [False] * 4
    assert lgc.group_keep()[1].tolist() == [False] * 4 + [True] * 4


def test_ties_are_broken_by_lower_index():
    lgc = LearnedGroupConv(8, 2, condense_factor=2, groups=1)
    with torch.no_grad():
        lgc.conv.weight.fill_(1.0)
    lgc.sparsify(0.5)
    assert lgc.group_keep()[0].tolist() == [False] * 4 + [True] * 4


def test_sfr_kxk_importance_uses_max_over_window():
    sfr = SparseFeatureReactivation(2, 2, sparse_factor=2, groups=2, kernel_size=3)
    with torch.no_grad():
        sfr.conv.weight.zero_()
        # input 0: output 0 has one big tap, output 1 many medium taps
        sfr.conv.weight[0, 0, 1, 1] = 5.0
        sfr.conv.weight[1, 0] = 1.0
        sfr.conv.weight[0, 1, 0, 0] = 1.0
        sfr.conv.weight[1, 1, 2, 2] = 2.0
    sfr.sparsify(0.5)
    # max-pooled importance keeps output 0 for input 0 (5 > 1) although the
    # sum over the window would favour output 1 (9 > 5)
    assert sfr.mask[:, 0].tolist() == [True, False]
    assert sfr.mask[:, 1].tolist() == [False, True]


def test_sparsify_is_deterministic_and_pure_forward():
    lgc = _lgc()
    x = torch.randn(2, 32, 5, 5)
    before = lgc.mask.clone()
    lgc.train()(x)
    assert torch.equal(lgc.mask, before), 'forward must not change masks'
    other = LearnedGroupConv(32, 48, 4, 4)
    other.load_state_dict(lgc.state_dict())
    lgc.sparsify(0.3)
    other.sparsify(0.3)
    assert torch.equal(lgc.mask, other.mask)


@pytest.mark.parametrize('k', [1, 3])
def test_lgc_deploy_equals_training(k):
    lgc = _lgc(I=24, O=32, C=3, G=4, k=k).eval()
    lgc.sparsify(0.5)
    x = torch.randn(2, 24, 7, 9)
    ref = lgc(x)
    lgc.switch_to_deploy()
    assert lgc.deploy and lgc.conv.groups == 4 and lgc.index.dtype == torch.long
    assert lgc.conv.weight.numel() * 3 == 32 * 24 * k * k
    torch.testing.assert_close(lgc(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('k,I,O,S,G', [(1, 16, 32, 4, 4), (1, 12, 24, 6, 3), (3, 8, 8, 8, 8),
                                       (3, 6, 12, 2, 1)])
def test_sfr_deploy_equals_training(k, I, O, S, G):
    sfr = _sfr(I=I, O=O, S=S, G=G, k=k).eval()
    sfr.sparsify(0.5)
    new, old = torch.randn(2, I, 6, 5), torch.randn(2, O, 6, 5)
    ref = sfr(new, old)
    sfr.switch_to_deploy()
    assert sfr.index.dtype == torch.long and sfr.index.numel() == O * G // S
    torch.testing.assert_close(sfr(new, old), ref, rtol=1e-5, atol=1e-5)


def test_converting_unfinished_layer_raises():
    lgc = _lgc()
    lgc.sparsify(0.2)
    with pytest.raises(ValueError, match='stage 1 of 3'):
        lgc.switch_to_deploy()


def test_invalid_layer_arguments():
    with pytest.raises(ValueError, match='condense_factor'):
        LearnedGroupConv(30, 32, 4, 4)
    with pytest.raises(ValueError, match='groups'):
        LearnedGroupConv(32, 30, 4, 4)
    with pytest.raises(ValueError, match='sparse_factor'):
        SparseFeatureReactivation(16, 30, 4, 4)
    with pytest.raises(ValueError, match='kernel_size'):
        SparseFeatureReactivation(16, 32, 4, 4, kernel_size=2)


@pytest.mark.parametrize('layer', [LearnedGroupConv, SparseFeatureReactivation])
@pytest.mark.parametrize('arg,value', [('in_channels', 0), ('out_channels', 32.0),
                                       ('groups', True), ('kernel_size', -1)])
def test_non_positive_int_arguments_are_named(layer, arg, value):
    kwargs = dict(in_channels=16, out_channels=32, groups=4, kernel_size=1)
    kwargs[arg] = value
    with pytest.raises(ValueError, match=f'{arg} must be a positive int, got {value!r}'):
        layer(kwargs.pop('in_channels'), kwargs.pop('out_channels'), 4, **kwargs)


def reference_selection(weights, progresses, factor, groups, prune_inputs, reduce='max'):
    """NumPy reference of the paper's selection, step by step: after each ``progress`` the
    layer is at stage ``min(F - 1, floor(2 p (F - 1)))``; every stage crossed drops, in
    every group, the ``candidates / F`` live candidates of least importance (ties: lower
    index first). Importance of candidate ``c`` for group ``g``: the sum over the group's
    members of ``|W|`` reduced over the kxk window (``'max'``, the paper's footnote 2, or
    ``'centre'``, the middle tap). LGC (``prune_inputs``): members are outputs ``o``
    (group ``o % G``), candidates inputs; SFR: members inputs ``j`` (group ``j % G``),
    candidates outputs. Returns the boolean ``(out, in)`` mask after each step."""
    stage, masks = 0, []
    keep = None
    for weight, progress in zip(weights, progresses):
        w = np.abs(weight.numpy().astype(np.float64))
        w = w.max(axis=(2, 3)) if reduce == 'max' else w[:, :, w.shape[2] // 2, w.shape[3] // 2]
        conn = w if prune_inputs else w.T                     # (members, candidates)
        members, candidates = conn.shape
        if keep is None:
            keep = np.ones((groups, candidates), dtype=bool)
        target = min(factor - 1, int(np.floor(2 * progress * (factor - 1) + 1e-9)))
        for g in range(groups):
            importance = conn[g::groups].sum(0)
            live = [c for c in range(candidates) if keep[g, c]]
            live.sort(key=lambda c: (importance[c], c))
            for c in live[:(target - stage) * (candidates // factor)] if target > stage else []:
                keep[g, c] = False
        stage = max(stage, target)
        mask = keep[np.arange(members) % groups]              # (members, candidates)
        masks.append(torch.from_numpy(mask if prune_inputs else mask.T.copy()))
    return masks


@pytest.mark.parametrize('kind,k', [('lgc', 3), ('sfr', 3), ('lgc', 1), ('sfr', 1)])
def test_masks_equal_a_numpy_reference_along_a_schedule(kind, k):
    """Masks after each step of a schedule whose weights change between steps (as in
    training), against the NumPy reference; for kxk kernels the data are such that the
    centre tap would select otherwise than the window max."""
    torch.manual_seed(11)
    layer = _lgc(I=24, O=16, C=4, G=2, k=k) if kind == 'lgc' else _sfr(I=8, O=24, S=4, G=2, k=k)
    progresses = [0.1, 0.2, 0.2, 0.45, 1.0]
    weights = [torch.randn_like(layer.conv.weight) for _ in progresses]
    got = []
    for weight, progress in zip(weights, progresses):
        with torch.no_grad():
            layer.conv.weight.copy_(weight)
        layer.sparsify(progress)
        got.append(layer.mask.clone())
    factor, groups = layer.factor, layer.groups
    want = reference_selection(weights, progresses, factor, groups, kind == 'lgc')
    for step, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(g, w), (kind, step)
    if k > 1:  # the test can tell the window max from the centre tap
        centre = reference_selection(weights, progresses, factor, groups, kind == 'lgc',
                                     reduce='centre')
        assert not all(torch.equal(a, b) for a, b in zip(centre, want))
