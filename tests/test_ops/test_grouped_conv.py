"""mmcnv2's compiled operators: the 8-group 3x3 kernel against torch's convolution."""
import pytest
import torch
import torch.nn.functional as F

from mmcnv2.ops import grouped_conv3x3_g8
from tests.utils import requires_ops

pytestmark = requires_ops


def kernel_inputs(x, w):
    """x (N, 8 * ipg, H, W), w (8 * opg, ipg, 3, 3) in the kernel's layouts."""
    n, c, h, wd = x.shape
    ipg, opg = c // 8, w.shape[0] // 8
    y = x.view(n, 8, ipg, h, wd).permute(0, 3, 4, 2, 1).reshape(n, h, wd, c).contiguous()
    weight = w.view(8, opg, ipg, 3, 3).permute(1, 3, 4, 2, 0).contiguous()
    return y, weight


@pytest.mark.parametrize('n,h,w,ipg,opg', [(2, 1, 1, 4, 1), (1, 5, 7, 4, 1), (2, 13, 9, 8, 2),
                                           (1, 3, 2, 3, 3), (1, 2, 17, 1, 1)])
def test_grouped_conv3x3_equals_conv2d(n, h, w, ipg, opg):
    torch.manual_seed(0)
    x, wt = torch.randn(n, 8 * ipg, h, w), torch.randn(8 * opg, ipg, 3, 3)
    y, weight = kernel_inputs(x, wt)
    buf = torch.full((n, 8 * opg + 5, h, w), float('nan'))
    out = buf[:, 3:3 + 8 * opg]  # a channel slice, as in the fused stage's buffer
    assert grouped_conv3x3_g8(y, weight, out) is out
    torch.testing.assert_close(out, F.conv2d(x, wt, padding=1, groups=8), rtol=1e-5, atol=1e-5)
    assert buf[:, :3].isnan().all() and buf[:, 3 + 8 * opg:].isnan().all()  # nothing else


def test_grouped_conv3x3_rejects_bad_input():
    y, weight = kernel_inputs(torch.randn(1, 32, 4, 4), torch.randn(8, 4, 3, 3))
    out = torch.empty(1, 8, 4, 4)
    cases = [
        ((y.double(), weight, out), 'y must be float32, got Double'),
        ((y, weight.half(), out), 'weight must be float32, got Half'),
        ((y, weight, out.to('meta')), 'out must be on the CPU, got meta'),
        ((y, weight[..., :4], out), r'weight must have shape \(opg, 3, 3, ipg, 8\)'),
        ((y, weight[:, :, :, :0], out), r'weight must have shape .* with opg, ipg > 0'),
        ((y, weight.transpose(0, 3).contiguous().transpose(0, 3), out),
         'weight must be contiguous'),
        ((y[..., :16], weight, out), r'y must have shape \(N, H, W, 8 \* ipg\) = '
                                     r'\(N, H, W, 32\) for weight \[1, 3, 3, 4, 8\], got '
                                     r'\[1, 4, 4, 16\]'),
        ((y.transpose(1, 2), weight, out), r'y must be contiguous \(channels-last'),
        ((y, weight, torch.empty(1, 16, 4, 4)), r'out must have shape \(N, 8 \* opg, H, W\) = '
                                                r'\(1, 8, 4, 4\), got \[1, 16, 4, 4\]'),
        ((y, weight, torch.empty(1, 8, 4, 4).transpose(2, 3)),
         'out must have stride 1 along W and W along H'),
    ]
    for args, message in cases:
        with pytest.raises(RuntimeError, match=f'grouped_conv3x3_g8: {message}'):
            grouped_conv3x3_g8(*args)


def test_grouped_conv3x3_rejects_out_overlapping_itself():
    """A zero channel stride makes every output channel the same memory: before the
    check the kernel wrote them all there, a silently wrong result."""
    x, wt = torch.randn(1, 32, 4, 4), torch.randn(8, 4, 3, 3)
    y, weight = kernel_inputs(x, wt)
    for out in (torch.zeros(1, 1, 4, 4).expand(1, 8, 4, 4),             # channel stride 0
                torch.zeros(1, 80).as_strided((1, 8, 4, 4), (64, 8, 4, 1))):
        with pytest.raises(RuntimeError, match='out overlaps itself'):
            grouped_conv3x3_g8(y, weight, out)
    images = torch.zeros(2, 1, 4, 4).expand(2, 8, 4, 4).contiguous()
    with pytest.raises(RuntimeError, match='out overlaps itself'):  # image stride 0
        grouped_conv3x3_g8(torch.cat([y, y]), weight, images[:1].expand(2, 8, 4, 4))


def test_grouped_conv3x3_rejects_out_overlapping_its_inputs():
    x, wt = torch.randn(1, 32, 4, 4), torch.randn(8, 4, 3, 3)
    y, weight = kernel_inputs(x, wt)
    into_y = y.view(-1)[:8 * 16].view(1, 8, 4, 4)                      # y's own memory
    with pytest.raises(RuntimeError, match='out overlaps y in memory'):
        grouped_conv3x3_g8(y, weight, into_y)
    shared = torch.zeros(weight.numel() + 8 * 16)                     # weight, then out
    w = shared[:weight.numel()].view_as(weight).copy_(weight)
    with pytest.raises(RuntimeError, match='out overlaps weight in memory'):
        grouped_conv3x3_g8(y, w, shared[weight.numel() - 8:weight.numel() - 8 + 128].view(
            1, 8, 4, 4))
    # next to it, but not overlapping: fine
    out = shared[weight.numel():].view(1, 8, 4, 4)
    grouped_conv3x3_g8(y, w, out)
    torch.testing.assert_close(out, F.conv2d(x, wt, padding=1, groups=8), rtol=1e-5, atol=1e-5)


def test_grouped_conv3x3_at_batch_0():
    y, weight = kernel_inputs(torch.randn(0, 32, 4, 4), torch.randn(8, 4, 3, 3))
    out = torch.empty(0, 8, 4, 4)
    assert grouped_conv3x3_g8(y, weight, out) is out
