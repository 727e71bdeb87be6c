"""Official checkpoints whose condense factor C, sparse factor S and group count G differ.

Every released model (and the fixture of tests/data/official_tiny) has C = S = G, where an
importer that assumes C = S = G, or mixes up a factor and the group count, cannot be told
from a correct one. The files here are written in the release's formats as its code lays
them out (written independently of mmcnv2's importer):

* training form: dense weights, float ``_mask`` buffers of the weight's shape, ``_stage``
  and ``_count`` counters. LGC: output ``o`` belongs to group ``o % G``, a group prunes
  inputs for all its outputs (``_mask[g::G, j] = 0``); SFR: input ``j`` belongs to group
  ``j % G``, a group prunes outputs (``_mask[o, g::G] = 0``); a layer at stage ``s`` has
  pruned ``s * candidates / F`` candidates in every group.
* converted form: LGC ``conv_1.index`` (per group, its kept inputs in ascending order),
  BN over the selected inputs, a ``G``-group conv whose output ``q + g * O / G`` is the
  training conv's output ``g + q * G``; SFR (the release's converter needs S = G) a
  ``G``-group conv over the new features gathered group by group, and a dense 0/1
  ``sfr.index`` matrix whose row ``r`` has its 1 at the old channel that converted
  channel ``r`` updates.

The release's forward pass, written here with torch.nn.functional, is the reference.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from mmcnv2.checkpoint import OfficialCheckpointError, import_official
from mmcnv2.checkpoint.official import classifier_config, convert_state_dict, infer_arch

# three blocks: ReLU in blocks 1-2, h-swish in block 3 (the release's), SE in block 3
DEPTHS, GROWTHS = (1, 1, 2), (8, 8, 16)  # 64 channels at the end
NUM_CLASSES, FC_CHANNELS = 10, 32


def official_state_dict(C, S, G, lgc_stage, sfr_stage, seed=0, lgc_groups=None):
    """A training-form state dict of the release with random weights and masks at the given
    stages; ``lgc_groups`` lays the LGC masks out in that many groups (default ``G``)."""
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, std=1.0):
        return torch.randn(*shape, generator=gen) * std

    def uniform(n, low, high):
        return torch.rand(n, generator=gen) * (high - low) + low

    def conv(o, i, k=1):
        return normal(o, i, k, k, std=(2 / (i * k * k))**0.5)

    def norm(prefix, n):
        sd.update({prefix + 'weight': uniform(n, 0.5, 1.5), prefix + 'bias': normal(n, std=0.1),
                   prefix + 'running_mean': normal(n, std=0.1),
                   prefix + 'running_var': uniform(n, 0.5, 1.5),
                   prefix + 'num_batches_tracked': torch.tensor(0)})

    def pruned(candidates, count):
        return torch.randperm(candidates, generator=gen)[:count]

    sd = {}
    channels = 2 * GROWTHS[0]
    sd['features.init_conv.weight'] = conv(channels, 3, 3)
    for b, (depth, k) in enumerate(zip(DEPTHS, GROWTHS), start=1):
        for layer in range(1, depth + 1):
            p = f'features.denseblock_{b}.denselayer_{layer}.'
            mid, I = 4 * k, channels
            norm(p + 'conv_1.norm.', I)
            sd[p + 'conv_1.conv.weight'] = conv(mid, I)
            mask = torch.ones(mid, I, 1, 1)
            g1 = lgc_groups or G
            for g in range(g1):
                mask[g::g1, pruned(I, lgc_stage * (I // C))] = 0
            sd[p + 'conv_1._mask'] = mask
            norm(p + 'conv_2.norm.', mid)
            sd[p + 'conv_2.conv.weight'] = conv(k, mid // G, 3)
            if b == 3:
                sd[p + 'se.fc.0.weight'] = normal(k, k, std=k**-0.5)
                sd[p + 'se.fc.2.weight'] = normal(k, k, std=k**-0.5)
            norm(p + 'sfr.norm.', k)
            sd[p + 'sfr.conv.weight'] = conv(I, k) * 0.5
            mask = torch.ones(I, k, 1, 1)
            for g in range(G):
                mask[pruned(I, sfr_stage * (I // S)), g::G] = 0
            sd[p + 'sfr._mask'] = mask
            for part, stage in (('conv_1', lgc_stage), ('sfr', sfr_stage)):
                sd[p + part + '._stage'] = torch.tensor([float(stage)])
                sd[p + part + '._count'] = torch.tensor([0.0])
            channels += k
    norm('features.norm_last.', channels)
    sd['features.se_last.fc.0.weight'] = normal(channels // 16, channels, std=channels**-0.5)
    sd['features.se_last.fc.2.weight'] = normal(channels, channels // 16, std=0.5)
    sd['fc.weight'] = normal(FC_CHANNELS, channels, std=channels**-0.5)
    sd['fc.bias'] = normal(FC_CHANNELS, std=0.1)
    sd['classifier.weight'] = normal(NUM_CLASSES, FC_CHANNELS, std=FC_CHANNELS**-0.5)
    sd['classifier.bias'] = normal(NUM_CLASSES, std=0.1)
    return sd


def official_logits(sd, G, x):
    """The release's forward pass (training form, eval mode) on the state dict."""
    def bn(prefix, t):
        return F.batch_norm(t, sd[prefix + 'running_mean'], sd[prefix + 'running_var'],
                            sd[prefix + 'weight'], sd[prefix + 'bias'], False, 0.0, 1e-5)

    def se(prefix, pooled):
        hidden = F.relu(F.linear(pooled, sd[prefix + 'fc.0.weight']))
        return torch.sigmoid(F.linear(hidden, sd[prefix + 'fc.2.weight']))

    x = F.conv2d(x, sd['features.init_conv.weight'], stride=2, padding=1)
    for b, depth in enumerate(DEPTHS, start=1):
        if b > 1:
            x = F.avg_pool2d(x, 2)
        act = F.relu if b < 3 else F.hardswish
        for layer in range(1, depth + 1):
            p = f'features.denseblock_{b}.denselayer_{layer}.'
            new = F.conv2d(act(bn(p + 'conv_1.norm.', x)),
                           sd[p + 'conv_1.conv.weight'] * sd[p + 'conv_1._mask'])
            new = F.conv2d(act(bn(p + 'conv_2.norm.', new)), sd[p + 'conv_2.conv.weight'],
                           padding=1, groups=G)
            if p + 'se.fc.0.weight' in sd:
                new = new * se(p + 'se.', new.mean((2, 3)))[:, :, None, None]
            increment = F.conv2d(act(bn(p + 'sfr.norm.', new)),
                                 sd[p + 'sfr.conv.weight'] * sd[p + 'sfr._mask'])
            x = torch.cat([x + increment, new], 1)
    x = F.relu(bn('features.norm_last.', x)).mean((2, 3))
    x = x * se('features.se_last.', x)
    x = F.hardswish(F.linear(x, sd['fc.weight'], sd['fc.bias']))
    return F.linear(x, sd['classifier.weight'], sd['classifier.bias'])


def official_converted(sd, G):
    """The release's converted form of a fully sparse training state dict (needs S = G)."""
    out = {}
    for key, value in sd.items():
        if not key.endswith('._mask'):
            if not key.endswith(('._stage', '._count')):
                out.setdefault(key, value)
            continue
        p = key[:-len('_mask')]
        weight, mask = sd[p + 'conv.weight'], value[:, :, 0, 0] != 0
        O, I = weight.shape[:2]
        if p.endswith('conv_1.'):
            kept = [mask[g].nonzero()[:, 0] for g in range(G)]  # rows g: group g's inputs
            index = torch.cat(kept)
            new = torch.empty(O, index.numel() // G, 1, 1)
            for g in range(G):
                for q in range(O // G):
                    new[q + g * (O // G)] = weight[g + q * G, kept[g]]
            out[p + 'index'] = index
            out[p + 'conv.weight'] = new
            for name in ('weight', 'bias', 'running_mean', 'running_var'):
                out[p + 'norm.' + name] = sd[p + 'norm.' + name][index]
        else:  # SFR: weight (old channels, new features); new feature j is in group j % G
            rows, targets = [], []
            for g in range(G):
                for o in mask[:, g].nonzero()[:, 0].tolist():  # column g: group g
                    rows.append(weight[o, g::G])
                    targets.append(o)
            out[p + 'conv.weight'] = torch.stack(rows)
            index = torch.zeros(len(targets), len(targets))
            index[torch.arange(len(targets)), torch.tensor(targets)] = 1
            out[p + 'index'] = index
    return out


def imported(path, **kwargs):
    return import_official(str(path), **kwargs)


def logits(model, x):
    with torch.no_grad():
        return model.eval()(x, mode='tensor')


@pytest.fixture(scope='module')
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('C,S,G,lgc_stage,sfr_stage', [(8, 4, 2, 3, 2), (2, 8, 4, 1, 5),
                                                       (4, 4, 4, 2, 1)])
def test_training_checkpoint_factors_are_read_off_masks(tmp_path, x, C, S, G, lgc_stage,
                                                        sfr_stage):
    sd = official_state_dict(C, S, G, lgc_stage, sfr_stage)
    torch.save({'state_dict': sd}, tmp_path / 'official.pth')
    model = imported(tmp_path / 'official.pth')['model']
    arch = model.backbone.arch
    assert (arch['condense_factor'], arch['sparse_factor'], arch['groups']) == (C, S, G)
    stages = {name.rsplit('.', 1)[1]: int(m.stage) for name, m in model.backbone.sparse_layers()}
    assert stages == {'conv1': lgc_stage, 'sfr': sfr_stage}
    ref = official_logits(sd, G, x)
    torch.testing.assert_close(logits(model, x), ref, rtol=1e-5, atol=1e-5)
    # the rest of the schedule, then the condensed form: the same function at full sparsity
    for _, m in model.backbone.sparse_layers():
        m.sparsify(0.5)
        assert m.density == pytest.approx(1 / m.factor)
    sparse = logits(model, x)
    model.backbone.switch_to_deploy()
    torch.testing.assert_close(logits(model, x), sparse, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('C,G', [(8, 2), (2, 4)])
def test_converted_release_with_condense_factor_other_than_groups(tmp_path, x, C, G):
    sd = official_state_dict(C, G, G, C - 1, G - 1, seed=3)  # fully sparse; the release's
    torch.save(official_converted(sd, G), tmp_path / 'converted.pth')  # converter needs S = G
    r = imported(tmp_path / 'converted.pth')
    arch = r['model'].backbone.arch
    assert r['meta']['mmcnv2']['form'] == 'deploy'
    assert (arch['condense_factor'], arch['sparse_factor'], arch['groups']) == (C, G, G)
    torch.testing.assert_close(logits(r['model'], x), official_logits(sd, G, x), rtol=1e-5,
                               atol=1e-5)


def _model_cfg(C, S, G):
    arch = dict(depths=DEPTHS, growth_rates=GROWTHS, condense_factor=C, sparse_factor=S,
                groups=G, bottleneck=4, stem_stride=2, hswish_from=2, se_from=2)
    return classifier_config(dict(arch=arch, deploy=False, num_classes=NUM_CLASSES,
                                  fc_channels=FC_CHANNELS, in_channels=64, se_reduction=16))


def test_dense_checkpoint_needs_the_config(tmp_path, x):
    """At stage 0 every mask is dense: any factor fits, so the importer asks for the config
    instead of assuming C = S = G; given it, the import is exact."""
    sd = official_state_dict(8, 4, 2, 0, 0)
    torch.save({'state_dict': sd}, tmp_path / 'dense.pth')
    with pytest.raises(OfficialCheckpointError,
                       match=r'condense_factor cannot be read off .* dense \(stage 0\).*--config'):
        imported(tmp_path / 'dense.pth')
    model = imported(tmp_path / 'dense.pth', model_cfg=_model_cfg(8, 4, 2))['model']
    assert (model.backbone.arch['condense_factor'], model.backbone.arch['sparse_factor']) == (8, 4)
    torch.testing.assert_close(logits(model, x), official_logits(sd, 2, x), rtol=1e-5, atol=1e-5)
    # where the masks tell the factors, a config that says otherwise is an error
    torch.save({'state_dict': official_state_dict(8, 4, 2, 3, 2)}, tmp_path / 'mid.pth')
    with pytest.raises(OfficialCheckpointError, match='has sparse_factor 4, the given config 2'):
        imported(tmp_path / 'mid.pth', model_cfg=_model_cfg(8, 2, 2))


def test_masks_not_uniform_within_the_groups_are_an_error(tmp_path):
    """LGC masks laid out in 4 groups while the 3x3 convolutions have 2: the importer's
    model (one group count) cannot hold them, and says so."""
    sd = official_state_dict(8, 4, 2, 3, 2, lgc_groups=4)
    with pytest.raises(OfficialCheckpointError, match='conv_1._mask: mask is not uniform within '
                                                      r'its groups \(groups 2'):
        infer_arch(sd)


def test_stage_counters_that_fit_no_factor_are_an_error():
    sd = official_state_dict(8, 4, 2, 3, 2)
    key = 'features.denseblock_2.denselayer_1.conv_1._stage'
    sd[key] = torch.tensor([2.0])  # 3 stages' worth pruned at "stage 2"
    with pytest.raises(OfficialCheckpointError, match='layers have different factors|fit no '
                                                      'factor'):
        infer_arch(sd)
    sd[key] = torch.tensor([0.0])
    with pytest.raises(OfficialCheckpointError, match='at stage 0 .* fit no factor'):
        infer_arch(sd)


def test_mask_to_stage_uses_factor_not_groups():
    """convert_state_dict derives each layer's stage from its mask with its factor
    (pruned / (candidates / F)); with C != G the group count would give another stage."""
    sd = official_state_dict(8, 4, 2, 3, 2)
    info = infer_arch(sd)
    ours = convert_state_dict(sd, info)
    stages = {k: int(v) for k, v in ours.items() if k.endswith('.stage')}
    assert set(stages.values()) == {2, 3}
    assert all(v == (3 if '.conv1.' in k else 2) for k, v in stages.items())
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(classifier_config(info))
    model.load_state_dict(ours, strict=True)
