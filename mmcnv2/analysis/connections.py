"""Connection strength between feature blocks and layers: the paper's Figures 6 and 7.

For every dense block (stage) of a CondenseNet or CondenseNetV2 checkpoint in
training form, the learned group convolution (LGC) of layer ``l`` reads the
block's input (feature block 0) and the new features of layers ``0 .. l-1``
of the block (feature blocks ``1 .. l``, ``growth`` channels each). The
strength of a connection is the mean absolute value of the LGC weights that
survived pruning (the mask), as in the paper:

* per filter group (Fig. 6): ``[block j, (layer l, group g)]``, NaN where group
  ``g`` of layer ``l`` kept no input of block ``j`` (pruned);
* per layer (Fig. 7): ``[block j, layer l]``, the mean over all of layer
  ``l``'s groups, divided by the largest value of that layer (each column
  peaks at 1, so early and late layers compare on one colour scale).

Rows are feature blocks ``0 .. n-1`` of an ``n``-layer block (the output of
its last layer is read only by the next block). Cells with ``j > l`` are NaN
too: those features are not produced yet when layer ``l`` runs.
:func:`not_produced` tells them from pruned ones. CondenseNetV2 moves no
channels (the reactivated old features stay in place), so its blocks line up
with CondenseNet's.
"""
import os
import os.path as osp
import re
from typing import Dict, Optional

import numpy as np
import torch

from ..checkpoint.files import read_checkpoint

_LGC = re.compile(r'^(?:backbone\.)?stages\.(\d+)\.layers\.(\d+)\.conv1\.(conv\.weight|mask|index)$')


def _load_state_dict(checkpoint) -> dict:
    """The state dict of a checkpoint dict or file (read by :func:`read_checkpoint`)."""
    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
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
        dict: ``{stage: dict(per_group=(layers, layers * groups) array,
        per_layer=(layers, layers) array, groups=G, growth=k,
        in_channels=c0)}``; rows are feature blocks.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file is not a readable checkpoint, has no LGC
            weights, or is in deploy form.

    Example:
        >>> from mmcnv2.models import CondenseNetV2
        >>> net = CondenseNetV2('cifar110')  # 3 blocks of 12 layers
        >>> for _, layer in net.sparse_layers():
        ...     _ = layer.sparsify(1.0)
        >>> m = connection_strength(net.state_dict())
        >>> m[2]['per_layer'].shape  # feature blocks 0..11 x layers 0..11
        (12, 12)
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
        per_group = np.full((n, n * groups), np.nan)
        per_layer = np.full((n, n), np.nan)
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


def not_produced(shape, groups: int = 1) -> np.ndarray:
    """Cells of a connection matrix whose feature block does not exist yet for the layer.

    Row ``j`` (feature block ``j``) is produced by layer ``j - 1``; column ``c``
    belongs to layer ``c // groups``, which reads blocks ``0 .. c // groups``.

    Example:
        >>> not_produced((3, 3)).astype(int)
        array([[0, 0, 0],
               [1, 0, 0],
               [1, 1, 0]])
    """
    rows, cols = np.indices(shape)
    return rows > cols // groups


def plot_connections(checkpoint, out: str, condensenet_checkpoint=None,
                     stages: Optional[list] = None) -> dict:
    """Draw Figures 6 and 7 of the paper for a checkpoint (and a CondenseNet one below).

    See :func:`connection_figure` for what is drawn.

    Args:
        checkpoint (str | dict): CondenseNetV2 checkpoint, training form.
        out (str): PNG file to write (folders are created).
        condensenet_checkpoint (str | dict, optional): A CondenseNet (v1)
            checkpoint drawn in the rows below, for comparison.
        stages (list[int], optional): Stages to draw; default all.

    Returns:
        dict: ``{'CondenseNetV2': matrices, 'CondenseNet': matrices}`` as
        :func:`connection_strength` returns them.

    Raises:
        FileNotFoundError: if a checkpoint file does not exist.
        ValueError: for a file that is not a readable training-form
            CondenseNet(V2) checkpoint, or stages it does not have.

    Example:
        >>> plot_connections('cnv2.pth', 'connections.png',
        ...                  condensenet_checkpoint='cnv1.pth')  # doctest: +SKIP
    """
    models = {'CondenseNetV2': connection_strength(checkpoint)}
    if condensenet_checkpoint is not None:
        models['CondenseNet'] = connection_strength(condensenet_checkpoint)
    fig = connection_figure(models, stages)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    return models


def connection_figure(models: Dict[str, dict], stages: Optional[list] = None):
    """The figure of :func:`plot_connections` for matrices of :func:`connection_strength`.

    One row of panels per figure and model, one panel per dense block. Each
    row has one colour scale from 0, labelled: Fig. 6 in mean |w| of the
    surviving weights, Fig. 7 relative to each layer's strongest block. Pruned
    connections are white, features not produced yet (a layer reads only
    those made before it) hatched grey. Row ``in`` is the block's input (for
    the first block the stem's output, later the previous block's features,
    pooled), row ``k`` the new features of layer ``k``.

    Args:
        models (dict): ``{name: matrices}``, the first model's stages decide.
        stages (list[int], optional): Stages to draw; default all.

    Returns:
        matplotlib.figure.Figure: The figure (not registered with pyplot).
    """
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    chosen = stages if stages is not None else sorted(next(iter(models.values())))
    for name, matrices in models.items():
        missing = sorted(set(chosen) - set(matrices))
        if missing:
            raise ValueError(f'stages must be among {sorted(matrices)} for {name}, got {missing}')
    # YlOrRd without its near-white end, so that no value looks like a pruned (white) cell
    # NaN transparent: it shows the white background (pruned) or the hatching (not produced)
    cmap = ListedColormap(colormaps['YlOrRd'](np.linspace(0.12, 1, 256))).with_extremes(
        bad=(0, 0, 0, 0))
    unborn = dict(facecolor='0.82', edgecolor='0.55', hatch='///', linewidth=0)
    figures = (('per_group', 'per filter group (Fig. 6)', 'layer (its filter groups)',
                'mean |w| of surviving weights'),
               ('per_layer', 'per layer (Fig. 7)', 'layer',
                "mean |w| / the layer's largest"))
    nrows, ncols = 2 * len(models), len(chosen)
    fig = Figure(figsize=(3.4 * ncols + 1.6, 3.1 * nrows + 0.9), layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, (name, matrices) in enumerate(models.items()):
        for k, (kind, title, xlabel, label) in enumerate(figures):
            row = axes[2 * r + k]
            values = np.concatenate([matrices[s][kind].ravel() for s in chosen])
            values = values[np.isfinite(values)]
            vmax = 1.0 if kind == 'per_layer' or not values.size else float(values.max())
            for ax, stage in zip(row, chosen):
                m = matrices[stage]
                data = m[kind]
                groups = m['groups'] if kind == 'per_group' else 1
                n = data.shape[0]
                ax.set_facecolor('white')
                for layer in range(n - 1):  # blocks layer+1.. are made after layer runs
                    ax.add_patch(Rectangle((layer * groups - 0.5, layer + 0.5), groups,
                                           n - 1 - layer, zorder=1, **unborn))
                im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=0, vmax=vmax,
                               aspect='auto', interpolation='nearest', zorder=2)
                if groups > 1:
                    for x in range(1, n):
                        ax.axvline(x * groups - 0.5, color='grey', linewidth=0.4, zorder=3)
                ax.set_xticks([layer * groups + (groups - 1) / 2 for layer in range(n)],
                              [str(layer) for layer in range(n)])
                ax.set_yticks(range(n), ['in'] + [str(j) for j in range(n - 1)])
                ax.set_xlim(-0.5, n * groups - 0.5)
                ax.set_ylim(n - 0.5, -0.5)
                ax.tick_params(labelsize=6)
                ax.set_title(f'{name}, block {stage + 1}: {title}', fontsize=8)
                ax.set_xlabel(xlabel, fontsize=7)
                ax.set_ylabel("features of layer (in: the block's input)", fontsize=7)
            bar = fig.colorbar(im, ax=list(row), fraction=0.03, pad=0.01)
            bar.set_label(label, fontsize=7)
            bar.ax.tick_params(labelsize=6)
    fig.suptitle('Connection strength: which features (rows) each layer (columns) reads\n'
                 "row in: the block's input (block 1: the stem's output; later blocks: the "
                 "previous block's features, pooled); row k: the new features of layer k",
                 fontsize=9)
    fig.legend(handles=[
        Patch(facecolor='white', edgecolor='0.3', linewidth=0.5,
              label='pruned (no surviving weight)'),
        Patch(label='not produced yet (a layer reads only features made before it)', **unborn),
    ], loc='outside lower center', ncol=2, fontsize=7, frameon=False)
    return fig
