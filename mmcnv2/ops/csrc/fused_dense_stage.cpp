// The loop of mmcnv2.models.layers.FusedSFRDenseStage in C++: the same ATen calls, in the
// same order, as _FusedSFRLayer.forward and _FusedStageBody.forward (so the outputs are
// bit-identical), without the Python interpreter between them. At batch 1 a layer on a
// 7x7 map makes some 40 calls, and from Python the time between them is as long as the
// time in them.
#include <torch/extension.h>

#include <vector>

namespace {

// Per-layer tensors, in the order _FusedSFRLayer.extension_args() lists them.
enum LayerTensor {
  kW1, kB1, kIndex1, kLower, kScaleIn, kShiftIn, kW2, kSeFc1T, kSeFc2T, kS3, kB3, kW3,
  kIndex3, kNumLayerTensors
};
// Per-layer ints, likewise.
enum LayerInt {
  kDense, kReluFolded, kAct1, kAct2, kAct3, kGroups3x3, kPadH, kPadW, kWithSe, kSfrGroups,
  kMid, kGrowth, kGroups, kNumLayerInts
};

// Activation code of mmcnv2.models.layers.fused_dense_stage._ACTIVATIONS, in place.
at::Tensor act_(at::Tensor x, int64_t code) {
  if (code == 1) return at::relu_(x);
  if (code == 2) return at::hardswish_(x);
  return x;
}

int64_t layer_forward(const at::Tensor& buf, int64_t c, const std::vector<at::Tensor>& t,
                      const std::vector<int64_t>& v) {
  const int64_t n = buf.size(0), h = buf.size(2), w = buf.size(3), hw = h * w;
  const int64_t mid = v[kMid], k = v[kGrowth], groups = v[kGroups];
  const bool dense = v[kDense] != 0;
  at::Tensor feats = buf.slice(1, 0, c).view({n, c, hw});
  // learned group convolution (+ folded BNs): y is (n, hw, mid), channels-last
  at::Tensor x = dense ? feats : feats.index_select(1, t[kIndex1]);
  if (v[kReluFolded]) {
    x = at::maximum(x, t[kLower]);
  } else if (dense) {
    x = act_(at::mul(x, t[kScaleIn]).add_(t[kShiftIn]), v[kAct1]);
  } else {
    x = act_(x.mul_(t[kScaleIn]).add_(t[kShiftIn]), v[kAct1]);
  }
  at::Tensor y;
  if (dense) {
    y = at::linear(n == 1 ? x[0].t() : x.transpose(1, 2), t[kW1], t[kB1]).view({n, hw, mid});
  } else {
    x = x.view({n, groups, -1, hw});
    if (n == 1 && hw <= 1024) {
      y = at::baddbmm(t[kB1].transpose(1, 2), x[0].transpose(1, 2), t[kW1].transpose(1, 2))
              .permute({1, 2, 0});
    } else {
      y = n == 1 ? at::baddbmm(t[kB1], t[kW1], x[0]).unsqueeze(0)
                 : at::matmul(t[kW1], x).add_(t[kB1]);
      y = y.permute({0, 3, 2, 1});
    }
    y = y.reshape({n, hw, mid});
  }
  y = act_(y, v[kAct2]).view({n, h, w, mid}).permute({0, 3, 1, 2});
  // 3x3 group convolution
  at::Tensor out_new = at::conv2d(y, t[kW2], {}, {1, 1}, {v[kPadH], v[kPadW]}, {1, 1},
                                  v[kGroups3x3]);
  at::Tensor out = buf.slice(1, c, c + k);
  if (v[kWithSe]) {
    at::Tensor gate = at::mm(out_new.sum({2, 3}), t[kSeFc1T]);
    at::relu_(gate);
    gate = at::mm(gate, t[kSeFc2T]);
    at::sigmoid_(gate.mul_(1.0 / static_cast<double>(hw)));
    at::mul_out(out, out_new, gate.view({n, k, 1, 1}));
  } else {
    out.copy_(out_new);
  }
  // sparse feature reactivation, in place on the old features
  at::Tensor r = act_(at::mul(out.view({n, k, hw}), t[kS3]).add_(t[kB3]), v[kAct3]);
  if (dense) {
    if (n == 1) {
      feats[0].addmm_(t[kW3], r[0]);
    } else {
      feats.baddbmm_(t[kW3].expand({n, -1, -1}), r);
    }
  } else {
    const int64_t sg = v[kSfrGroups];
    if (n == 1) {
      at::Tensor react = at::bmm(t[kW3], r[0].view({k / sg, sg, hw}).transpose(0, 1));
      feats[0].index_add_(0, t[kIndex3], react.view({-1, hw}));
    } else {
      at::Tensor react = at::matmul(t[kW3], r.view({n, k / sg, sg, hw}).transpose(1, 2));
      feats.index_add_(1, t[kIndex3], react.view({n, -1, hw}));
    }
  }
  return c + k;
}

}  // namespace

at::Tensor dense_stage_forward(const at::Tensor& x, bool downsample, int64_t out_channels,
                               const std::vector<std::vector<at::Tensor>>& tensors,
                               const std::vector<std::vector<int64_t>>& ints) {
  TORCH_CHECK(x.dim() == 4, "dense_stage_forward: expected a 4-D input, got ", x.dim(), "-D");
  TORCH_CHECK(tensors.size() == ints.size(), "dense_stage_forward: ", tensors.size(),
              " tensor lists for ", ints.size(), " int lists");
  for (size_t i = 0; i < tensors.size(); ++i) {
    TORCH_CHECK(tensors[i].size() == kNumLayerTensors && ints[i].size() == kNumLayerInts,
                "dense_stage_forward: layer ", i, " has ", tensors[i].size(), " tensors and ",
                ints[i].size(), " ints, expected ", static_cast<int>(kNumLayerTensors), " and ",
                static_cast<int>(kNumLayerInts));
  }
  const int64_t n = x.size(0);
  int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor buf;
  if (downsample) {  // 2x2 average pool written straight into the buffer
    h /= 2;
    w /= 2;
    buf = x.new_empty({n, out_channels, h, w});
    using at::indexing::Slice;
    at::Tensor rows = at::add(x.index({Slice(), Slice(), Slice(0, 2 * h, 2)}),
                              x.index({Slice(), Slice(), Slice(1, 2 * h, 2)}));
    at::Tensor head = buf.slice(1, 0, c);
    at::add_out(head, rows.index({"...", Slice(0, 2 * w, 2)}),
                rows.index({"...", Slice(1, 2 * w, 2)}))
        .mul_(0.25);
  } else {
    buf = x.new_empty({n, out_channels, h, w});
    buf.slice(1, 0, c).copy_(x);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    c = layer_forward(buf, c, tensors[i], ints[i]);
  }
  return buf;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmcnv2's fused CondenseNetV2 dense stage loop (ATen calls only)";
  // What mmcnv2/ops/__init__.py expects: bump with any change of the arguments' layout.
  m.attr("ABI_VERSION") = 1;
  m.def("dense_stage_forward", &dense_stage_forward,
        "Forward of a FusedSFRDenseStage: input, downsample, out_channels, per-layer tensors, "
        "per-layer ints");
}
