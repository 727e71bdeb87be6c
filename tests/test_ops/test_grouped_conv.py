"""mmcnv2's compiled operators: the 8-group 3x3 kernel against torch's convolution."""
import pytest
import torch
import torch.nn.functional as F

from mmcnv2.ops import grouped_conv3x3_g8
from tests.conftest import requires_ops

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
    with pytest.raises(RuntimeError, match='float32 CPU tensors only'):
        grouped_conv3x3_g8(y.double(), weight.double(), torch.empty(1, 8, 4, 4).double())
    with pytest.raises(RuntimeError, match='shapes of y, weight and out do not match'):
        grouped_conv3x3_g8(y, weight, torch.empty(1, 16, 4, 4))
    with pytest.raises(RuntimeError, match='shapes of y, weight and out do not match'):
        grouped_conv3x3_g8(y, weight, torch.empty(1, 8, 4, 4).transpose(2, 3))
    with pytest.raises(RuntimeError, match=r'expected y \(N, H, W, 8 \* ipg\)'):
        grouped_conv3x3_g8(y.transpose(1, 2), weight, torch.empty(1, 8, 4, 4))
