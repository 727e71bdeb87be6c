"""Connection strength between feature blocks and layers: the paper's Figures 6 and 7.

For every dense block (stage) of a CondenseNet or CondenseNetV2 checkpoint in
training form, the learned group convolution (LGC) of layer ``l`` reads the
block's input (feature block 0) and the new features of layers ``0 .. l-1``
of the block (feature blocks ``1 .. l``, ``growth`` channels each). The
strength of a connection is the mean absolute value of the LGC weights that
survived pruning (the mask), as in the paper:

* per filter group (Fig. 6): ``[block j, (layer l, group g)]``, NaN where group
  ``g`` of layer ``l`` kept no input of block ``j`` (drawn white);
* per layer (Fig. 7): ``[block j, layer l]``, the mean over all of layer
  ``l``'s groups, divided by the largest value of that layer (each column
  peaks at 1, so early and late layers compare on one colour scale).

Cells above the diagonal (a block that does not exist yet for that layer) are
NaN too. CondenseNetV2 moves no channels (the reactivated old features stay in
place), so its blocks line up with CondenseNet's.
"""
import os
import os.path as osp
import re
from typing import Dict, Optional

import numpy as np
import torch

_LGC = re.compile(r'^(?:backbone\.)?stages\.(\d+)\.layers\.(\d+)\.conv1\.(conv\.weight|mask|index)$')


def _load_state_dict(checkpoint) -> dict:
    if isinstance(checkpoint, dict):
        ckpt = checkpoint
    else:
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    return ckpt.get('state_dict', ckpt)


def _groups(mask: torch.Tensor) -> int:
    """The smallest G with row o's mask equal to row (o mod G)'s, for every row."""
    rows = mask.shape[0]
    for g in range(1, rows + 1):
        if rows % g == 0 and bool((mask.view(rows // g, g, -1) == mask[:g]).all()):
            return g
    return rows


def connection_strength(checkpoint) -> Dict[int, dict]:
    """Per-stage connection matrices of a training-form CondenseNet(V2) checkpoint.

    Args:
        checkpoint (str | dict): Path or loaded checkpoint; keys may carry the
            ``backbone.`` prefix of mmpretrain/mmdet models.

    Returns:
        dict: ``{stage: dict(per_group=(blocks, layers * groups) array,
        per_layer=(blocks, layers) array, groups=G, growth=k,
        in_channels=c0)}``.

    Raises:
        ValueError: if the checkpoint has no LGC weights, or is in deploy form.

    Example:
        >>> from mmcnv2.models import CondenseNetV2
        >>> net = CondenseNetV2('cifar110')  # 3 blocks of 12 layers
        >>> for _, layer in net.sparse_layers():
        ...     _ = layer.sparsify(1.0)
        >>> m = connection_strength(net.state_dict())
        >>> m[2]['per_layer'].shape  # feature blocks 0..12 x layers 0..11
        (13, 12)
    """
    state = _load_state_dict(checkpoint)
    found = {}
    for key, value in state.items():
        match = _LGC.match(key)
        if match:
            found.setdefault((int(match[1]), int(match[2])), {})[match[3]] = value
    if not found:
        raise ValueError('no learned group convolutions (stages.<i>.layers.<j>.conv1.conv.weight) '
                         'in this checkpoint: expected a CondenseNet or CondenseNetV2 checkpoint')
    if any('index' in v for v in found.values()) or any('mask' not in v for v in found.values()):
        raise ValueError('a training-form checkpoint (with conv1.mask) is needed: the deploy '
                         'form no longer holds the pruned connections')
    result = {}
    for stage in sorted({s for s, _ in found}):
        layers = [found[(stage, j)] for j in sorted(j for s, j in found if s == stage)]
        c0 = layers[0]['conv.weight'].shape[1]
        growth = (layers[1]['conv.weight'].shape[1] - c0) if len(layers) > 1 else 0
        groups = _groups(layers[-1]['mask'].bool())
        n = len(layers)
        per_group = np.full((n + 1, n * groups), np.nan)
        per_layer = np.full((n + 1, n), np.nan)
        for l, layer in enumerate(layers):
            weight = layer['conv.weight'].float().abs().amax(dim=(2, 3))  # (out, in)
            mask = layer['mask'].bool()
            out = weight.shape[0]
            for j in range(l + 1):
                lo, hi = (0, c0) if j == 0 else (c0 + (j - 1) * growth, c0 + j * growth)
                w, m = weight[:, lo:hi], mask[:, lo:hi]
                if m.any():
                    per_layer[j, l] = float(w[m].mean())
                for g in range(groups):
                    rows = torch.arange(g, out, groups)
                    mg = m[rows]
                    if mg.any():
                        per_group[j, l * groups + g] = float(w[rows][mg].mean())
            peak = np.nanmax(per_layer[:, l]) if not np.all(np.isnan(per_layer[:, l])) else 0
            if peak > 0:
                per_layer[:, l] /= peak
        result[stage] = dict(per_group=per_group, per_layer=per_layer, groups=groups,
                             growth=growth, in_channels=c0)
    return result


def plot_connections(checkpoint, out: str, condensenet_checkpoint=None,
                     stages: Optional[list] = None) -> dict:
    """Draw Figures 6 and 7 of the paper for a checkpoint (and a CondenseNet one beside).

    Args:
        checkpoint (str | dict): CondenseNetV2 checkpoint, training form.
        out (str): PNG file to write (folders are created).
        condensenet_checkpoint (str | dict, optional): A CondenseNet (v1)
            checkpoint drawn in the rows below, for comparison.
        stages (list[int], optional): Stages to draw; default all.

    Returns:
        dict: ``{'CondenseNetV2': matrices, 'CondenseNet': matrices}`` as
        :func:`connection_strength` returns them.

    Example:
        >>> plot_connections('cnv2.pth', 'connections.png',
        ...                  condensenet_checkpoint='cnv1.pth')  # doctest: +SKIP
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    models = {'CondenseNetV2': connection_strength(checkpoint)}
    if condensenet_checkpoint is not None:
        models['CondenseNet'] = connection_strength(condensenet_checkpoint)
    chosen = stages if stages is not None else sorted(models['CondenseNetV2'])
    for name, matrices in models.items():
        missing = sorted(set(chosen) - set(matrices))
        if missing:
            raise ValueError(f'stages must be among {sorted(matrices)} for {name}, got {missing}')
    cmap = plt.get_cmap('YlOrRd').with_extremes(bad='white')
    nrows, ncols = 2 * len(models), len(chosen)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1, 3.2 * nrows), squeeze=False)
    for r, (name, matrices) in enumerate(models.items()):
        for c, stage in enumerate(chosen):
            m = matrices[stage]
            for k, (kind, title, xlabel) in enumerate((
                    ('per_group', 'mean |w| per filter group (Fig. 6)', 'layer / filter group'),
                    ('per_layer', 'per layer, column max = 1 (Fig. 7)', 'layer'))):
                ax = axes[2 * r + k, c]
                data = np.ma.masked_invalid(m[kind])
                im = ax.imshow(data, cmap=cmap, aspect='auto', interpolation='nearest')
                ax.set_title(f'{name}, block {stage + 1}: {title}', fontsize=8)
                ax.set_xlabel(xlabel, fontsize=8)
                ax.set_ylabel('input feature block', fontsize=8)
                if kind == 'per_group' and m['groups'] > 1:
                    for x in range(1, m[kind].shape[1] // m['groups']):
                        ax.axvline(x * m['groups'] - 0.5, color='grey', linewidth=0.4)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                ax.tick_params(labelsize=6)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    fig.suptitle('Connection strength between input feature blocks and layers '
                 '(white: pruned or not yet produced)', fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return models
