"""Inference-only fast form of a CondenseNetV2 dense stage.

The deploy form (``index_select -> BN -> act -> group conv -> shuffle`` for the
learned group convolution, ``BN -> act -> group conv -> index_add`` for sparse
feature reactivation, then a concatenation) spends most of its time outside
arithmetic on a CPU: grouped 1x1 convolutions with a handful of channels per
group fall back to one tiny convolution per group, the channel shuffle and
every concatenation copy the features, and each BN is a pass of its own.
:class:`FusedSFRDenseStage` computes exactly the same function with fewer
passes over memory:

* The stage writes into one preallocated buffer: every layer adds its
  reactivation in place (``index_add_`` or ``addmm_`` on a view) and writes its
  new features into their slice; no concatenation, no copy of old features.
* The BN after the learned group convolution is folded into its weight and a
  bias; the channel shuffle is folded into the weight layout. In ReLU stages
  the BN before it folds too: ``relu(s * x + b) = s * max(x, -b / s) + b`` for
  ``s > 0`` (``relu(b)`` for ``s == 0``), ``s`` and the constant going into the
  1x1 weight and bias, so the pre-activation is one ``max`` pass. Other
  per-channel affines run as ``mul`` + ``add_`` (a broadcast ``addcmul`` is 3x
  slower on CPU).
* Where a group reads fewer than :attr:`DENSE_BELOW` channels, the learned
  group convolution and the reactivation run as one dense matrix product with
  the zeros of the pruned connections (the training form's masked weight,
  rebuilt from the condensed one): BLAS on a ``(mid, C) x (C, HW)`` product
  beats many products with an inner size of 2-15, and needs neither the
  index selection nor the shuffle. Elsewhere they run as batched products
  over the groups. The 3x3 group convolution likewise merges neighbouring
  groups, with zeros between them, until each reads at least twice
  :attr:`DENSE_BELOW` inputs (oneDNN's kernels for groups of 4-16 channels
  run far below peak; at 112 x 112 the dense convolution doing 8x the
  arithmetic beats the true groups, at 56 x 56 two merged groups beat both).
  The C++ loop (``backend='cpp'``, the default where built) does better with a
  kernel of its own for 8 groups (:func:`mmcnv2.ops.grouped_conv3x3_g8`): the
  real arithmetic, 2-5x faster than oneDNN on maps at least 20 wide.
* The 3x3 convolution runs in channels-last layout, which the 1x1 product and
  the shuffle copy write for free. The SE runs inline and its gate multiplies
  the new features straight into their slice of the buffer (NCHW), so the
  reactivation reads contiguous memory and no separate copy is made.
* The 2x2 average pool before a stage is two strided adds written straight
  into the stage's buffer (2x faster than ``avg_pool2d`` or a depthwise
  convolution, and no copy).
* The loop itself runs in C++ by default (see :class:`FusedSFRDenseStage`):
  at batch 1 the Python interpreter between a layer's ~40 ATen calls cost as
  much as the calls.

For ONNX export (``backend='onnx'``) the same folded weights run as a graph of
standard operators, with no in-place writes (an exported graph cannot write
into a buffer) and no scatter: :meth:`_FusedSFRLayer.graph_forward`. The
reactivation is a 1x1 convolution over all old channels (zeros where a
channel is not reactivated) added to them, and the 3x3 group convolution,
whose few channels per group ONNX Runtime runs through a slow per-group
im2col, is one depthwise convolution over the inputs each output reads
followed by a sum over them (the true arithmetic; in ONNX Runtime on
CondenseNetV2-A, 1 thread, the convolutions took 1.8 ms instead of 6.2, 3.4 ms
with the gathers and sums they need).

Every reformulation is an identity in exact arithmetic; the tests check the
fused stage against the training form to 1e-5 relative for every arch.
"""
import warnings
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...ops import LAYER_INTS, LAYER_TENSORS, dense_stage_forward, extension_error
from .inference_only import InferenceOnly, refuse_autograd
from .squeeze_excitation import SqueezeExcitation

CHANNELS_LAST = torch.channels_last


def _bn_affine(norm: nn.Module):
    """``(scale, shift)`` of an eval-mode BatchNorm: ``bn(x) = scale * x + shift``."""
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or not norm.track_running_stats:
        raise TypeError(f'only BatchNorm with running stats can be fused, got {norm}')
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.affine:
        scale = scale * norm.weight
        return scale, norm.bias - norm.running_mean * scale
    return scale, -norm.running_mean * scale


#: What :func:`_act_` applies for codes 0, 1, 2.
_ACTIVATIONS = (nn.Identity, nn.ReLU, nn.Hardswish)


def _act_code(act: nn.Module) -> int:
    """The code of ``act`` for :func:`_act_` (an int, so the layer can be scripted)."""
    for code, cls in enumerate(_ACTIVATIONS):
        if type(act) is cls:
            return code
    raise TypeError(f'cannot fuse activation {type(act).__name__}; '
                    f'allowed: {[cls.__name__ for cls in _ACTIVATIONS]}')


def _act_(x: torch.Tensor, code: int) -> torch.Tensor:
    """Activation ``code`` of :data:`_ACTIVATIONS`, in place."""
    if code == 1:
        return torch.relu_(x)
    if code == 2:
        return F.hardswish(x, True)
    return x


def _act(x: torch.Tensor, code: int) -> torch.Tensor:
    """Activation ``code`` of :data:`_ACTIVATIONS`, out of place (for export)."""
    if code == 1:
        return torch.relu(x)
    if code == 2:
        return F.hardswish(x)
    return x


def _dense_reactivation_weight(sfr: nn.Module, num_old: int) -> torch.Tensor:
    """A deploy-form 1x1 SFR's condensed weight as one dense ``(num_old, k)`` matrix over
    all old channels: zeros where a channel is not reactivated, the increments of
    several groups to the same channel summed."""
    w3 = sfr.conv.weight[:, :, 0, 0]                        # (kept, k/G): row r reads g + p*G
    kept, sG, k = w3.shape[0], sfr.groups, sfr.in_channels
    src = (torch.arange(kept, device=w3.device) // (kept // sG)).view(-1, 1) \
        + torch.arange(k // sG, device=w3.device).view(1, -1) * sG
    return w3.new_zeros(num_old, k).index_put_(
        (sfr.index.view(-1, 1).expand_as(src), src), w3, accumulate=True)


class _FusedSFRLayer(nn.Module):
    """One :class:`~mmcnv2.models.layers.SFRDenseLayer` (deploy form), fused; see the
    module docstring.

    The constructor folds the layer in named steps, one per part of the layer:
    :meth:`_fold_learned_group_conv` (with the BN after it),
    :meth:`_fold_input_activation` (the BN and activation before it),
    :meth:`_fold_group_conv3x3`, :meth:`_fold_squeeze_excitation` and
    :meth:`_fold_reactivation`. The C++ loop reads the result by the names of
    :data:`mmcnv2.ops.LAYER_TENSORS` and :data:`mmcnv2.ops.LAYER_INTS`
    (:meth:`extension_args`).
    """

    #: Buffers that only some layers use; every layer has them (empty where
    #: unused), since TorchScript needs every attribute ``forward`` names.
    OPTIONAL_BUFFERS = ('index1', 'lower', 's_in', 'b_in', 'se_fc1_t', 'se_fc2_t', 'index3',
                        'w1_jmajor', 'b1_jmajor', 'w2_kernel', 'index2')

    def __init__(self, layer: nn.Module, dense_below: int, kernel3x3: bool = False,
                 graph: bool = False):
        super().__init__()
        lgc, conv2, sfr = layer.conv1, layer.conv2, layer.sfr
        if not (lgc.deploy and sfr.deploy) or lgc.kernel_size != 1 or sfr.kernel_size != 1:
            raise ValueError('only deploy-form layers with 1x1 LGC/SFR can be fused')
        for name in self.OPTIONAL_BUFFERS:
            empty = torch.empty(0, dtype=torch.long if name.startswith('index') else None)
            self.register_buffer(name, empty.to(lgc.conv.weight.device), False)
        self.in_channels, self.mid = lgc.in_channels, lgc.out_channels
        self.growth, self.groups = conv2.conv.out_channels, lgc.groups
        w1, bias1, scale, shift = self._fold_learned_group_conv(lgc, conv2.norm, dense_below)
        self._fold_input_activation(lgc.act, scale, shift, w1, bias1)
        self.act2 = _act_code(conv2.act)
        # the graph form keeps the true groups (it runs them as one depthwise convolution)
        self._fold_group_conv3x3(conv2.conv, 0 if graph else dense_below, kernel3x3)
        self._fold_squeeze_excitation(layer.se)
        self._fold_reactivation(sfr)
        if graph:
            self._fold_graph_weights(sfr)
        for name, buffer in list(self.named_buffers(recurse=False)):
            setattr(self, name, buffer.detach())  # views of parameters: drop requires_grad

    def _fold_learned_group_conv(self, lgc: nn.Module, norm_after: nn.Module, dense_below: int):
        """The 1x1 learned group convolution with the BN after it folded in, as a dense
        ``(mid, c)`` weight over all inputs (``self.dense``: where its groups read fewer
        than ``dense_below`` inputs) or a ``(G, mid/G, per)`` one over ``index1``.

        Returns:
            tuple: The weight and bias (rows in LGC output order: the shuffle is
            folded in), and the ``(scale, shift)`` of the BN before the
            convolution, over the inputs the weight's columns read.
        """
        c, G, mid = self.in_channels, self.groups, self.mid
        self.dense = c // lgc.factor < dense_below  # inputs each learned group reads
        s2, b2 = _bn_affine(norm_after)                     # over LGC outputs, original order
        s1, b1 = _bn_affine(lgc.norm)                       # over the selected inputs
        w1 = lgc.conv.weight[:, :, 0, 0]                    # (mid, per): row g*(mid/G) + q
        per = w1.shape[1]
        rows = torch.arange(mid, device=w1.device)
        original = rows % (mid // G) * G + rows // (mid // G)  # conv row -> LGC output channel
        if self.dense:
            # one BN per input channel: exact when every selection of a channel carries
            # that channel's BN (always after condensing; not for arbitrary deploy weights)
            scale, shift = w1.new_zeros(c), w1.new_zeros(c)  # unread inputs stay 0 after act
            scale[lgc.index], shift[lgc.index] = s1, b1
            self.dense = bool((scale[lgc.index] == s1).all() and (shift[lgc.index] == b1).all())
        if self.dense:
            # LGC as the dense masked weight over all inputs, rows in original order
            cols = lgc.index.view(G, 1, per).expand(G, mid // G, per).reshape(mid, per)
            w1 = w1.new_zeros(mid, c).index_put_(
                (original.view(-1, 1).expand_as(cols), cols), w1, accumulate=True)
            return w1 * s2.view(-1, 1), b2.view(-1, 1), scale, shift  # (mid, c), (mid, 1)
        self.register_buffer('index1', lgc.index.clone(), False)
        w1 = (w1 * s2[original].view(-1, 1)).view(G, mid // G, per)
        return w1, b2[original].view(G, mid // G, 1), s1, b1

    def _fold_input_activation(self, act: nn.Module, scale, shift, w1, bias1):
        """The BN and activation before the 1x1 product; registers ``w1`` and ``b1``.

        ReLU with no negative BN scale: ``relu(s * x + b) = s * max(x, -b / s) + b``
        (``s > 0``), ``relu(b)`` (``s == 0``); ``s`` and the constant fold into the 1x1
        weight and bias, and the pre-activation is one ``max`` (``lower``) instead of
        an affine pass and a ReLU pass. Otherwise ``s_in``, ``b_in`` and ``act1``.
        """
        self.act1 = 0
        self.relu_folded = isinstance(act, nn.ReLU) and bool((scale >= 0).all())
        if self.relu_folded:
            positive = scale > 0
            self.register_buffer('lower', torch.where(
                positive, -shift / scale.where(positive, 1), 0).view(-1, 1), False)
            const = torch.where(positive, shift, shift.clamp(min=0))
            shape = (self.in_channels, 1) if self.dense else (self.groups, w1.shape[-1], 1)
            bias1 = bias1 + torch.matmul(w1, const.view(shape))  # per input of w1's columns
            w1 = w1 * scale.view(shape).transpose(-1, -2)
        else:
            self.register_buffer('s_in', scale.view(-1, 1).contiguous(), False)
            self.register_buffer('b_in', shift.view(-1, 1).contiguous(), False)
            self.act1 = _act_code(act)
        self.register_buffer('w1', w1.contiguous(), False)
        self.register_buffer('b1', (bias1.view(-1) if self.dense else bias1).contiguous(), False)

    def _fold_group_conv3x3(self, conv: nn.Conv2d, dense_below: int, kernel3x3: bool):
        """The 3x3 group convolution: ``w2`` (channels-last, neighbouring groups merged
        with zeros between them until each reads ``>= 2 * dense_below`` inputs), and
        the weights of the C++ loop's own kernel where it applies."""
        G, mid, k = self.groups, self.mid, self.growth
        w2 = conv.weight                                    # (k, mid/G, 3, 3)
        # oneDNN's grouped kernels are slow on few channels per group, and at
        # 32 inputs a group beats both the true groups and the dense convolution
        self.groups3x3 = max(d for d in range(1, G + 1)
                             if G % d == 0 and (d == 1 or mid // d >= 2 * dense_below))
        if self.groups3x3 < G:
            o, m, merged = k // G, mid // G, G // self.groups3x3
            blocks = w2.new_zeros(k, mid // self.groups3x3, *w2.shape[2:])
            for g in range(G):
                blocks[g * o:(g + 1) * o, g % merged * m:(g % merged + 1) * m] = \
                    w2[g * o:(g + 1) * o]
            w2 = blocks
        self.register_buffer('w2', w2.contiguous(memory_format=CHANNELS_LAST), False)
        self.padding: List[int] = list(conv.padding)
        self.pad_h, self.pad_w = self.padding
        # the C++ loop's own 3x3 kernel (mmcnv2.ops.grouped_conv3x3_g8: 8 groups as vector
        # lanes), where it applies; the C++ loop uses it on maps wide enough. Its input is
        # "j-major" (input j of group g at channel j * 8 + g): a dense 1x1 writes that with
        # its rows reordered (w1_jmajor), a grouped one with another shuffle permutation
        # (needs mid % 64 == 0); the kernel reads the true groups' weight as (k/8, 3, 3, mid/8, 8)
        self.kernel3x3 = kernel3x3 and G == 8 and (self.dense or mid % (G * G) == 0) and tuple(
            conv.kernel_size) == (3, 3) and self.padding == [1, 1] and tuple(
            conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
        if self.kernel3x3:
            ipg = mid // G
            if self.dense:
                order = torch.arange(mid, device=self.w1.device).view(G, ipg).t().reshape(-1)
                self.register_buffer('w1_jmajor', self.w1[order].contiguous(), False)
                self.register_buffer('b1_jmajor', self.b1[order].contiguous(), False)
            self.register_buffer('w2_kernel', conv.weight.view(G, k // G, ipg, 3, 3).permute(
                1, 3, 4, 2, 0).contiguous(), False)

    def _fold_squeeze_excitation(self, se):
        """The SE (bias-free fc1 -> ReLU -> fc2 -> sigmoid gate), run inline: its
        weights transposed for ``mm``."""
        self.with_se = se is not None
        if self.with_se:
            if type(se) is not SqueezeExcitation:
                raise TypeError(f'cannot fuse SE module {type(se).__name__}')
            self.register_buffer('se_fc1_t', se.fc1.weight.t().contiguous(), False)
            self.register_buffer('se_fc2_t', se.fc2.weight.t().contiguous(), False)

    def _fold_reactivation(self, sfr: nn.Module):
        """The sparse feature reactivation: its BN as ``s3``, ``b3``, and its weight as
        a dense ``(c, k)`` matrix (``self.dense``) or ``(S, kept/S, k/S)`` products
        summed into ``index3``."""
        c, k = self.in_channels, self.growth
        s3, b3 = _bn_affine(sfr.norm)
        self.register_buffer('s3', s3.view(-1, 1), False)
        self.register_buffer('b3', b3.view(-1, 1), False)
        self.act3 = _act_code(sfr.act)
        w3 = sfr.conv.weight[:, :, 0, 0]                    # (kept, k/G): row r reads g + p*G
        self.sfr_groups = sG = sfr.groups
        if self.dense:
            self.register_buffer('w3', _dense_reactivation_weight(sfr, c), False)
        else:
            self.register_buffer('w3', w3.view(sG, -1, k // sG).contiguous(), False)
            self.register_buffer('index3', sfr.index.clone(), False)

    def _fold_graph_weights(self, sfr: nn.Module):
        """The weights of :meth:`graph_forward`: the 3x3 group convolution as a depthwise
        weight ``w2_depthwise`` (row ``(g * o + j) * m + i`` is output ``g * o + j``'s
        kernel on its group's input ``i``; ``m`` inputs and ``o`` outputs per group)
        over the inputs ``index2`` (omitted where it is the identity, ``o == 1``), and
        the reactivation as a dense ``(c, k)`` weight ``w3_dense``."""
        G, k = self.groups3x3, self.growth
        w2 = self.w2.contiguous()                          # (k, m, kh, kw)
        m, o = w2.shape[1], k // G
        self.depthwise3x3 = G > 1 and not (m == 1 and o == 1)
        if self.depthwise3x3:
            self.register_buffer('w2_depthwise', w2.reshape(k * m, 1, *w2.shape[2:]), False)
            if o > 1:
                index2 = (torch.arange(G, device=w2.device).view(G, 1, 1) * m
                          + torch.arange(m, device=w2.device).view(1, 1, m)).expand(G, o, m)
                self.register_buffer('index2', index2.reshape(-1), False)
        w3 = self.w3 if self.dense else _dense_reactivation_weight(sfr, self.in_channels)
        self.register_buffer('w3_dense', w3.view(*w3.shape, 1, 1), False)

    @torch.jit.unused
    def graph_forward(self, feats: torch.Tensor) -> torch.Tensor:
        """The layer on ``feats`` (N, c, H, W) as standard operators, without in-place
        writes: returns the reactivated old features and the new ones concatenated
        (N, c + k, H, W). What ONNX export traces (``backend='onnx'``)."""
        n, c, h, w = feats.shape
        G, mid, k = self.groups, self.mid, self.growth
        x = feats if self.dense else feats.index_select(1, self.index1)
        if self.relu_folded:
            x = torch.maximum(x, self.lower.view(1, -1, 1, 1))
        else:
            x = _act(x * self.s_in.view(1, -1, 1, 1) + self.b_in.view(1, -1, 1, 1), self.act1)
        if self.dense:
            y = F.conv2d(x, self.w1.view(mid, c, 1, 1), self.b1)
        else:  # the group convolution, then the shuffle into LGC output order
            y = F.conv2d(x, self.w1.reshape(mid, -1, 1, 1), self.b1.reshape(mid), groups=G)
            y = y.view(n, G, mid // G, h, w).transpose(1, 2).reshape(n, mid, h, w)
        y = _act(y, self.act2)
        if self.depthwise3x3:
            if self.index2.numel():
                y = y.index_select(1, self.index2)
            m = self.w2_depthwise.shape[0] // k
            new = F.conv2d(y, self.w2_depthwise, None, 1, self.padding, 1, k * m)
            new = new.view(n, k, m, h, w).sum(2)
        else:
            new = F.conv2d(y, self.w2.contiguous(), None, 1, self.padding, 1, self.groups3x3)
        if self.with_se:
            gate = torch.relu(torch.mm(new.mean((2, 3)), self.se_fc1_t))
            new = new * torch.sigmoid(torch.mm(gate, self.se_fc2_t)).view(n, k, 1, 1)
        r = _act(new * self.s3.view(1, -1, 1, 1) + self.b3.view(1, -1, 1, 1), self.act3)
        return torch.cat([feats + F.conv2d(r, self.w3_dense), new], 1)

    @torch.jit.unused
    def extension_args(self):
        """``(tensors, ints)`` for :func:`mmcnv2.ops.dense_stage_forward`: the attributes
        named by :data:`mmcnv2.ops.LAYER_TENSORS` and :data:`mmcnv2.ops.LAYER_INTS`, in
        their order (bools as 0 / 1)."""
        return ([getattr(self, name) for name in LAYER_TENSORS],
                [int(getattr(self, name)) for name in LAYER_INTS])

    def forward(self, buf: torch.Tensor, c: int) -> int:
        """Run on ``buf[:, :c]`` in place, write the new features after them; return the new c."""
        n, _, h, w = buf.shape
        hw, G, mid = h * w, self.groups, self.mid
        feats = buf[:, :c].view(n, c, hw)  # a view: the reactivation writes into buf
        # learned group convolution (+ folded BNs): y is (n, mid, h, w), channels-last
        x = feats if self.dense else feats.index_select(1, self.index1)
        if self.relu_folded:
            x = torch.maximum(x, self.lower)
        elif self.dense:  # mul + add_: broadcast addcmul is 3x slower on CPU
            x = _act_(torch.mul(x, self.s_in).add_(self.b_in), self.act1)
        else:  # in place on the gathered copy
            x = _act_(x.mul_(self.s_in).add_(self.b_in), self.act1)
        if self.dense:  # 2-D linear is addmm: the bias rides on the product (called as
            # linear, since TorchScript splits a bare addmm into mm + add)
            y = F.linear(x[0].t() if n == 1 else x.transpose(1, 2), self.w1, self.b1)
            y = y.view(n, hw, mid)
        else:  # sizes spelled out: -1 cannot be inferred at batch 0
            x = x.view(n, G, x.shape[1] // G, hw)
            if n == 1 and hw <= 1024:  # (G, hw, mid/G): the shuffle copy then reads rows
                y = torch.baddbmm(self.b1.transpose(1, 2), x[0].transpose(1, 2),
                                  self.w1.transpose(1, 2)).permute(1, 2, 0)
            else:  # (n, G, mid/G, hw): a product with hw outer is faster on large maps
                y = torch.baddbmm(self.b1, self.w1, x[0]).unsqueeze(0) if n == 1 \
                    else torch.matmul(self.w1, x).add_(self.b1)
                y = y.permute(0, 3, 2, 1)
            y = y.reshape(n, hw, mid)                       # the shuffle, channels-last
        y = _act_(y, self.act2).view(n, h, w, mid).permute(0, 3, 1, 2)
        # 3x3 group convolution
        new = F.conv2d(y, self.w2, None, [1, 1], self.padding, [1, 1], self.groups3x3)
        # SE gate and the copy into the buffer in one pass, NCHW: the ops after run
        # on contiguous memory instead of the convolution's channels-last output
        k = self.growth
        out = buf[:, c:c + k]
        if self.with_se:  # fc2(relu(fc1(mean))) = fc2(relu(fc1(sum))) / hw: mean costs 6 ops
            gate = F.relu_(torch.mm(new.sum((2, 3)), self.se_fc1_t))
            gate = torch.sigmoid_(torch.mm(gate, self.se_fc2_t).mul_(1 / hw))
            torch.mul(new, gate.view(n, k, 1, 1), out=out)
        else:
            out.copy_(new)
        # sparse feature reactivation, in place on the old features
        r = _act_(torch.mul(out.view(n, k, hw), self.s3).add_(self.b3), self.act3)  # (n, k, hw)
        if self.dense:
            if n == 1:
                feats[0].addmm_(self.w3, r[0])
            else:
                feats.baddbmm_(self.w3.expand(n, -1, -1), r)
        else:
            sG = self.sfr_groups
            if n == 1:  # bmm: matmul would copy every group's slice of r
                react = torch.bmm(self.w3, r[0].view(k // sG, sG, hw).transpose(0, 1))
            else:
                react = torch.matmul(self.w3, r.view(n, k // sG, sG, hw).transpose(1, 2))
            if n == 1:  # along dim 0 of a 2-D view: 1.5-2x faster than dim 1 of 3-D
                feats[0].index_add_(0, self.index3, react.view(self.index3.numel(), hw))
            else:
                feats.index_add_(1, self.index3, react.view(n, self.index3.numel(), hw))
        return c + k


class _FusedStageBody(nn.Module):
    """The layers of a :class:`FusedSFRDenseStage` and its loop (scriptable)."""

    def __init__(self, layers: List[_FusedSFRLayer], downsample: bool):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.downsample = downsample
        self.in_channels = layers[0].in_channels
        self.out_channels = self.in_channels + sum(layer.growth for layer in layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.downsample:  # 2x2 average pool written straight into the buffer: 2x
            h, w = h // 2, w // 2  # faster than avg_pool2d or a depthwise conv on CPU
            buf = x.new_empty(n, self.out_channels, h, w)
            rows = torch.add(x[:, :, 0:2 * h:2], x[:, :, 1:2 * h:2])
            torch.add(rows[..., 0:2 * w:2], rows[..., 1:2 * w:2], out=buf[:, :c]).mul_(0.25)
        else:
            buf = x.new_empty(n, self.out_channels, h, w)
            buf[:, :c] = x
        for layer in self.layers:
            c = layer(buf, c)
        return buf


class _GraphStageBody(_FusedStageBody):
    """The layers of a ``backend='onnx'`` stage: their :meth:`_FusedSFRLayer.graph_forward`
    one after another, a concatenation each (what an ONNX graph can express). The 2x2
    average pool is a depthwise 2x2 convolution of stride 2 with weights 1/4: ONNX
    Runtime's ``AveragePool`` took 3.5 ms of CondenseNetV2-B's 47 (1 thread)."""

    def __init__(self, layers: List[_FusedSFRLayer], downsample: bool):
        super().__init__(layers, downsample)
        c = self.in_channels
        self.register_buffer('pool_weight', layers[0].w3.new_full((c, 1, 2, 2), 0.25), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = F.conv2d(x, self.pool_weight, None, 2, 0, 1, self.in_channels)
        for layer in self.layers:
            x = layer.graph_forward(x)
        return x


class FusedSFRDenseStage(InferenceOnly, nn.Module):
    """Inference-only form of a deploy-form CondenseNetV2
    :class:`~mmcnv2.models.layers.DenseStage`.

    Built from the deploy form by :func:`mmcnv2.models.fuse_for_inference`
    (not constructed by hand); computes the same function as the stage it
    replaces, in eval mode only (BN is folded), without autograd: ``train()``
    and calls that would need gradients raise ``RuntimeError`` (see
    :mod:`mmcnv2.models.layers.inference_only`).

    The layer loop makes the same ATen calls under every ``backend``; what
    differs is what runs between the calls. At batch 1 a layer on a 7 x 7 map
    makes some 40 of them, and from Python the time between them is as long
    as the time in them:

    * ``'cpp'``: the loop in C++ (:func:`mmcnv2.ops.dense_stage_forward`,
      compiled when mmcnv2 is installed), plus a 3x3 kernel of its own
      (:func:`mmcnv2.ops.grouped_conv3x3_g8`) for layers with 8 groups, on
      float32 CPU maps at least 20 wide (oneDNN runs such groups far below
      peak or, merged, on 2-8x the arithmetic). On one thread it runs a batch
      image by image (CondenseNetV2-C at batch 8: 0.7-0.8x the time of the
      batched loop). Equal to ``'python'`` up to float rounding.
    * ``'torchscript'``: the Python loop as a TorchScript module, bit-identical
      to ``'python'`` and about as fast as the C++ loop without its kernel;
      TorchScript is deprecated by PyTorch (its ``FutureWarning`` is silenced
      here, for this explicit choice).
    * ``'python'``: the loop in Python.
    * ``'onnx'``: standard operators without in-place writes or scatters, the
      3x3 group convolutions as depthwise ones (see the module docstring):
      the form ONNX export traces (``tools/export_onnx.py``), slower than the
      others in eager PyTorch.
    * ``'auto'`` (default): ``'cpp'`` when the extension is built, else
      ``'python'`` with a warning that says why.

    Args:
        stage (DenseStage): A deploy-form stage of
            :class:`~mmcnv2.models.layers.SFRDenseLayer`.
        dense_below (int): Layers whose learned groups read fewer inputs
            than this run their 1x1 products densely. Defaults to
            :attr:`DENSE_BELOW`.
        backend (str): One of :attr:`BACKENDS`. Defaults to ``'auto'``.

    Example:
        >>> import torch
        >>> from mmcnv2.models import CondenseNetV2
        >>> net = CondenseNetV2('a', deploy=True).eval()
        >>> fused = FusedSFRDenseStage(net.stages[2], backend='python')
        >>> x = torch.randn(1, 32, 56, 56)
        >>> with torch.no_grad():
        ...     torch.allclose(fused(x), net.stages[2](x), rtol=1e-4, atol=1e-5)
        True
    """

    #: Measured on x86 CPUs (tools/benchmark.py): below 16 inputs per group a
    #: dense product with zeros is faster than products over the groups.
    DENSE_BELOW = 16
    BACKENDS = ('auto', 'cpp', 'torchscript', 'python', 'onnx')

    def __init__(self, stage: nn.Module, dense_below: int = DENSE_BELOW, backend: str = 'auto'):
        super().__init__()
        self.backend = resolve_backend(backend)
        downsample = not isinstance(stage.pool, nn.Identity)
        if downsample and not (
                isinstance(stage.pool, nn.AvgPool2d) and stage.pool.kernel_size in (2, (2, 2))
                and stage.pool.stride in (2, (2, 2)) and stage.pool.padding in (0, (0, 0))
                and not stage.pool.ceil_mode):
            raise ValueError(f'expected a 2x2/2 average pool, got {stage.pool}')
        with torch.no_grad():  # buffers derived from parameters, without their graph
            layers = [_FusedSFRLayer(layer, dense_below, kernel3x3=self.backend == 'cpp',
                                     graph=self.backend == 'onnx') for layer in stage.layers]
        body = (_GraphStageBody if self.backend == 'onnx' else _FusedStageBody)(layers, downsample)
        self.in_channels, self.out_channels = body.in_channels, body.out_channels
        if self.backend == 'torchscript':
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', r'`torch\.jit\.script` is deprecated',
                                        FutureWarning)
                body = torch.jit.script(body)
        self.body = body
        self._extension_args = None  # built on the first 'cpp' call, dropped by _apply
        self.eval()

    @property
    def layers(self) -> nn.ModuleList:
        """The fused layers."""
        return self.body.layers

    def _apply(self, *args, **kwargs):
        self._extension_args = None  # .to() / .half() replace the buffers
        return super()._apply(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refuse_autograd(self, (x, ))
        if x.shape[1] != self.in_channels:
            raise ValueError(f'expected {self.in_channels} input channels, got {x.shape[1]}')
        with torch.no_grad():
            if self.backend != 'cpp':
                return self.body(x)
            if self._extension_args is None:
                args = [layer.extension_args() for layer in self.layers]
                self._extension_args = ([a[0] for a in args], [a[1] for a in args])
            return dense_stage_forward(x, self.body.downsample, self.out_channels,
                                       *self._extension_args)


def resolve_backend(backend: str) -> str:
    """The backend ``backend`` names (``'auto'``: ``'cpp'`` if built, else ``'python'``).

    Raises:
        ValueError: if ``backend`` is not one of :attr:`FusedSFRDenseStage.BACKENDS`.
        RuntimeError: if ``'cpp'`` is asked for and the extension is not built.
    """
    check_backend(backend)
    error = extension_error()
    if backend == 'cpp' and error is not None:
        raise RuntimeError(f"backend='cpp' needs mmcnv2's compiled operators: {error}; "
                           'reinstall with a C++ compiler (pip install --no-build-isolation '
                           "-e .) or choose backend='python'")
    if backend == 'auto':
        if error is None:
            return 'cpp'
        warnings.warn(f"mmcnv2's compiled operators are not available ({error}); the fused "
                      "dense stages run their loop in Python (CondenseNetV2-C: 1.4x the "
                      "time at batch 1). Pass backend='python' to choose that explicitly.")
        return 'python'
    return backend


def check_backend(backend: str):
    """Raise ``ValueError`` unless ``backend`` is one of :attr:`FusedSFRDenseStage.BACKENDS`."""
    if backend not in FusedSFRDenseStage.BACKENDS:
        raise ValueError(f'backend must be one of {FusedSFRDenseStage.BACKENDS}, '
                         f'got {backend!r}')
