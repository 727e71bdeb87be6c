// The loop of mmcnv2.models.layers.FusedSFRDenseStage in C++: the ATen calls of
// _FusedSFRLayer.forward and _FusedStageBody.forward, in the same order, without the Python
// interpreter between them (at batch 1 a layer on a 7x7 map makes some 40 calls, and from
// Python the time between them is as long as the time in them); and, for layers whose 3x3
// group convolution has 8 groups of few channels, the kernel of grouped_conv3x3_g8.cpp
// instead of oneDNN's. Elsewhere the outputs are bit-identical to the Python loop's.
#include <torch/extension.h>

#include <vector>

#include "dense_stage_layout.h"
#include "mmcnv2_ops.h"

namespace {

// Indices of the per-layer tensors and ints (TensorAt::w1, IntAt::mid, ...) and their
// names, for error messages: from dense_stage_layout.h, generated from the one declaration
// in mmcnv2/ops/dense_stage_layout.py, by whose names the Python side packs them.
#define MMCNV2_ENUMERATOR(name) name,
#define MMCNV2_NAME(name) #name,
struct TensorAt {
  enum : int { MMCNV2_LAYER_TENSORS(MMCNV2_ENUMERATOR) count };
};
struct IntAt {
  enum : int { MMCNV2_LAYER_INTS(MMCNV2_ENUMERATOR) count };
};
constexpr const char* kTensorNames[TensorAt::count] = {MMCNV2_LAYER_TENSORS(MMCNV2_NAME)};
constexpr const char* kIntNames[IntAt::count] = {MMCNV2_LAYER_INTS(MMCNV2_NAME)};
#undef MMCNV2_ENUMERATOR
#undef MMCNV2_NAME

// Activation codes: those of mmcnv2.models.layers.fused_dense_stage._ACTIVATIONS.
constexpr int64_t kNumActivations = 3;

// Checks layer i's arguments against each other and against its c input channels and the
// stage input x (dtype, device), before anything runs: a bad argument raises, naming itself,
// instead of dividing by zero, reading out of bounds or computing something else.
void check_layer(size_t i, int64_t c, const std::vector<at::Tensor>& t,
                 const std::vector<int64_t>& v, const at::Tensor& x) {
  auto name = [&](int k) { return kIntNames[k]; };
  for (int k : {IntAt::dense, IntAt::relu_folded, IntAt::with_se, IntAt::kernel3x3}) {
    TORCH_CHECK(v[k] == 0 || v[k] == 1, "dense_stage_forward: layer ", i, ": ", name(k),
                " must be 0 or 1, got ", v[k]);
  }
  for (int k : {IntAt::act1, IntAt::act2, IntAt::act3}) {
    TORCH_CHECK(v[k] >= 0 && v[k] < kNumActivations, "dense_stage_forward: layer ", i, ": ",
                name(k), " must be an activation code in {0: identity, 1: ReLU, 2: h-swish}, "
                "got ", v[k]);
  }
  for (int k : {IntAt::groups, IntAt::sfr_groups, IntAt::groups3x3, IntAt::mid, IntAt::growth}) {
    TORCH_CHECK(v[k] > 0, "dense_stage_forward: layer ", i, ": ", name(k), " must be > 0, got ",
                v[k]);
  }
  for (int k : {IntAt::pad_h, IntAt::pad_w}) {
    TORCH_CHECK(v[k] >= 0, "dense_stage_forward: layer ", i, ": ", name(k), " must be >= 0, got ",
                v[k]);
  }
  const int64_t mid = v[IntAt::mid], k = v[IntAt::growth], groups = v[IntAt::groups],
                sg = v[IntAt::sfr_groups], g3 = v[IntAt::groups3x3];
  const bool dense = v[IntAt::dense], kernel = v[IntAt::kernel3x3];
  auto divides = [&](int a, int b) {  // ints a divides ints b
    TORCH_CHECK(v[b] % v[a] == 0, "dense_stage_forward: layer ", i, ": ", name(a), " (", v[a],
                ") must divide ", name(b), " (", v[b], ")");
  };
  divides(IntAt::groups, IntAt::mid);
  divides(IntAt::groups3x3, IntAt::mid);
  divides(IntAt::groups3x3, IntAt::growth);
  divides(IntAt::sfr_groups, IntAt::growth);
  if (kernel) {
    TORCH_CHECK(groups == 8 && k % 8 == 0 && (dense || mid % 64 == 0),
                "dense_stage_forward: layer ", i, ": kernel3x3 needs groups == 8, growth a "
                "multiple of 8 and, unless dense, mid a multiple of 64; got groups ", groups,
                ", growth ", k, ", mid ", mid);
  }
  // every tensor the layer reads: on x's device, of x's dtype (indices: int64), this shape
  auto check = [&](int n, std::vector<int64_t> shape, bool index = false) {
    const at::Tensor& a = t[n];
    TORCH_CHECK(a.defined() && a.sizes() == at::IntArrayRef(shape), "dense_stage_forward: layer ",
                i, ": ", kTensorNames[n], " must have shape ", at::IntArrayRef(shape), ", got ",
                a.defined() ? a.sizes() : at::IntArrayRef());
    TORCH_CHECK(a.device() == x.device(), "dense_stage_forward: layer ", i, ": ",
                kTensorNames[n], " must be on the input's device ", x.device(), ", got ",
                a.device());
    const at::ScalarType dtype = index ? at::kLong : x.scalar_type();
    TORCH_CHECK(a.scalar_type() == dtype, "dense_stage_forward: layer ", i, ": ",
                kTensorNames[n], " must be ", dtype, index ? "" : " like the input", ", got ",
                a.scalar_type());
  };
  // an index tensor of a positive multiple of ints `of` entries; returns its length
  auto check_index = [&](int n, int of) {
    const int64_t entries = t[n].defined() ? t[n].numel() : 0;
    TORCH_CHECK(entries > 0 && entries % v[of] == 0, "dense_stage_forward: layer ", i, ": ",
                kTensorNames[n], " must hold a positive multiple of ", name(of), " (", v[of],
                ") entries, got ", entries);
    check(n, {entries}, true);
    return entries;
  };
  int64_t read = c;  // channels the learned group convolution reads
  if (dense) {
    check(TensorAt::w1, {mid, c});
    check(TensorAt::b1, {mid});
  } else {
    const int64_t selected = check_index(TensorAt::index1, IntAt::groups);
    check(TensorAt::w1, {groups, mid / groups, selected / groups});
    check(TensorAt::b1, {groups, mid / groups, 1});
    read = selected;
  }
  if (v[IntAt::relu_folded]) {
    check(TensorAt::lower, {read, 1});
  } else {
    check(TensorAt::s_in, {read, 1});
    check(TensorAt::b_in, {read, 1});
  }
  const at::Tensor& w2 = t[TensorAt::w2];
  TORCH_CHECK(w2.defined() && w2.dim() == 4, "dense_stage_forward: layer ", i,
              ": w2 must be 4-D (growth, mid / groups3x3, kh, kw), got ",
              w2.defined() ? w2.sizes() : at::IntArrayRef());
  check(TensorAt::w2, {k, mid / g3, w2.size(2), w2.size(3)});
  TORCH_CHECK(w2.size(2) == 2 * v[IntAt::pad_h] + 1 && w2.size(3) == 2 * v[IntAt::pad_w] + 1,
              "dense_stage_forward: layer ", i, ": w2's kernel ", w2.size(2), "x", w2.size(3),
              " and padding ", v[IntAt::pad_h], ", ", v[IntAt::pad_w],
              " must keep the map size (kernel = 2 * "
              "padding + 1)");
  if (v[IntAt::with_se]) {
    const at::Tensor& fc1 = t[TensorAt::se_fc1_t];
    const int64_t r = fc1.defined() && fc1.dim() == 2 ? fc1.size(1) : -1;
    check(TensorAt::se_fc1_t, {k, r});
    check(TensorAt::se_fc2_t, {r, k});
  }
  check(TensorAt::s3, {k, 1});
  check(TensorAt::b3, {k, 1});
  if (dense) {
    check(TensorAt::w3, {c, k});
  } else {
    const int64_t kept = check_index(TensorAt::index3, IntAt::sfr_groups);
    check(TensorAt::w3, {sg, kept / sg, k / sg});
  }
  if (kernel) {
    check(TensorAt::w2_kernel, {k / 8, 3, 3, mid / 8, 8});
    if (dense) {
      check(TensorAt::w1_jmajor, {mid, c});
      check(TensorAt::b1_jmajor, {mid});
    }
  }
}

// The 3x3 kernel beats oneDNN on maps at least this wide (measured: 5x at 112, 3x at 56,
// 2x at 28, slower at 14, where most pixels are border pixels outside its 8-pixel blocks).
constexpr int64_t kKernelMinWidth = 20;

// Activation code of mmcnv2.models.layers.fused_dense_stage._ACTIVATIONS, in place.
at::Tensor act_(at::Tensor x, int64_t code) {
  if (code == 1) return at::relu_(x);
  if (code == 2) return at::hardswish_(x);
  return x;
}

int64_t layer_forward(const at::Tensor& buf, int64_t c, const std::vector<at::Tensor>& t,
                      const std::vector<int64_t>& v) {
  const int64_t n = buf.size(0), h = buf.size(2), w = buf.size(3), hw = h * w;
  const int64_t mid = v[IntAt::mid], k = v[IntAt::growth], groups = v[IntAt::groups];
  const bool dense = v[IntAt::dense] != 0;
  // the layer's own 3x3 kernel: its input channels j-major (input j of group g at j * 8 + g)
  const bool kernel = v[IntAt::kernel3x3] && w >= kKernelMinWidth &&
                      buf.scalar_type() == at::kFloat && buf.device().is_cpu();
  at::Tensor feats = buf.slice(1, 0, c).view({n, c, hw});
  // learned group convolution (+ folded BNs): y is (n, hw, mid), channels-last
  at::Tensor x = dense ? feats : feats.index_select(1, t[TensorAt::index1]);
  if (v[IntAt::relu_folded]) {
    x = at::maximum(x, t[TensorAt::lower]);
  } else if (dense) {
    x = act_(at::mul(x, t[TensorAt::s_in]).add_(t[TensorAt::b_in]), v[IntAt::act1]);
  } else {
    x = act_(x.mul_(t[TensorAt::s_in]).add_(t[TensorAt::b_in]), v[IntAt::act1]);
  }
  at::Tensor y;
  if (dense) {  // j-major: the rows of the 1x1 weight reordered
    y = at::linear(n == 1 ? x[0].t() : x.transpose(1, 2),
                   t[kernel ? TensorAt::w1_jmajor : TensorAt::w1],
                   t[kernel ? TensorAt::b1_jmajor : TensorAt::b1])
            .view({n, hw, mid});
  } else {
    // the shuffle: row q of LGC group g is channel q * G + g; j-major, with q = a * s + b
    // (s = mid / G / G), that channel is input j = b * G + g of 3x3 group a, at j * G + a
    const int64_t s = mid / groups / groups;
    x = x.view({n, groups, x.size(1) / groups, hw});
    if (n == 1 && hw <= 1024) {  // (G, hw, mid/G)
      y = at::baddbmm(t[TensorAt::b1].transpose(1, 2), x[0].transpose(1, 2),
                      t[TensorAt::w1].transpose(1, 2));
      y = kernel ? y.view({groups, hw, groups, s}).permute({1, 3, 0, 2}) : y.permute({1, 2, 0});
    } else {  // (n, G, mid/G, hw)
      y = n == 1 ? at::baddbmm(t[TensorAt::b1], t[TensorAt::w1], x[0]).unsqueeze(0)
                 : at::matmul(t[TensorAt::w1], x).add_(t[TensorAt::b1]);
      y = kernel ? y.view({n, groups, groups, s, hw}).permute({0, 4, 3, 1, 2})
                 : y.permute({0, 3, 2, 1});
    }
    y = y.reshape({n, hw, mid});
  }
  y = act_(y, v[IntAt::act2]).view({n, h, w, mid}).permute({0, 3, 1, 2});
  // 3x3 group convolution, then the SE gate; the result goes into its slice of the buffer
  at::Tensor out = buf.slice(1, c, c + k);
  at::Tensor conv;  // the convolution's own output, when it cannot write into out
  if (kernel) {
    // (channels-last already, but for the dense 1x1 at batch > 1, where linear() leaves
    // its output (n, mid, hw)-major)
    grouped_conv3x3_g8(y.permute({0, 2, 3, 1}).contiguous(), t[TensorAt::w2_kernel], out);
  } else {
    conv = at::conv2d(y, t[TensorAt::w2], {}, {1, 1}, {v[IntAt::pad_h], v[IntAt::pad_w]}, {1, 1},
                      v[IntAt::groups3x3]);
  }
  if (v[IntAt::with_se]) {  // fc2(relu(fc1(mean))) = fc2(relu(fc1(sum))) / hw
    at::Tensor gate = at::mm((conv.defined() ? conv : out).sum({2, 3}), t[TensorAt::se_fc1_t]);
    at::relu_(gate);
    gate = at::mm(gate, t[TensorAt::se_fc2_t]);
    at::sigmoid_(gate.mul_(1.0 / static_cast<double>(hw)));
    if (conv.defined()) {
      at::mul_out(out, conv, gate.view({n, k, 1, 1}));
    } else {
      out.mul_(gate.view({n, k, 1, 1}));
    }
  } else if (conv.defined()) {
    out.copy_(conv);
  }
  // sparse feature reactivation, in place on the old features
  at::Tensor r =
      act_(at::mul(out.view({n, k, hw}), t[TensorAt::s3]).add_(t[TensorAt::b3]), v[IntAt::act3]);
  if (dense) {
    if (n == 1) {
      feats[0].addmm_(t[TensorAt::w3], r[0]);
    } else {
      feats.baddbmm_(t[TensorAt::w3].expand({n, -1, -1}), r);
    }
  } else {
    const int64_t sg = v[IntAt::sfr_groups];
    if (n == 1) {
      at::Tensor react = at::bmm(t[TensorAt::w3], r[0].view({k / sg, sg, hw}).transpose(0, 1));
      feats[0].index_add_(0, t[TensorAt::index3], react.view({t[TensorAt::index3].numel(), hw}));
    } else {
      at::Tensor react = at::matmul(t[TensorAt::w3], r.view({n, k / sg, sg, hw}).transpose(1, 2));
      feats.index_add_(1, t[TensorAt::index3], react.view({n, t[TensorAt::index3].numel(), hw}));
    }
  }
  return c + k;
}

}  // namespace

// Declared in mmcnv2_ops.h.
at::Tensor dense_stage_forward(const at::Tensor& x, bool downsample, int64_t out_channels,
                               const std::vector<std::vector<at::Tensor>>& tensors,
                               const std::vector<std::vector<int64_t>>& ints) {
  TORCH_CHECK(x.dim() == 4, "dense_stage_forward: x must be 4-D (N, C, H, W), got ", x.dim(),
              "-D");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "dense_stage_forward: x must be a floating "
              "point tensor, got ", x.scalar_type());
  TORCH_CHECK(tensors.size() == ints.size(), "dense_stage_forward: ", tensors.size(),
              " tensor lists for ", ints.size(), " int lists");
  int64_t channels = x.size(1);
  for (size_t i = 0; i < tensors.size(); ++i) {
    TORCH_CHECK(tensors[i].size() == TensorAt::count && ints[i].size() == IntAt::count,
                "dense_stage_forward: layer ", i, " has ", tensors[i].size(), " tensors and ",
                ints[i].size(), " ints, expected ", static_cast<int>(TensorAt::count), " and ",
                static_cast<int>(IntAt::count));
    check_layer(i, channels, tensors[i], ints[i], x);
    channels += ints[i][IntAt::growth];
  }
  TORCH_CHECK(out_channels == channels, "dense_stage_forward: out_channels must equal the "
              "input's channels plus every layer's growth, ", channels, ", got ", out_channels);
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
  // On one thread a batch runs image by image: each image's buffer stays in cache through
  // the stage, and the batch-1 products are the faster ones (CondenseNetV2-C at batch 8:
  // 0.7-0.8x the time of the batched loop in paired runs on a 2-core machine). With more
  // threads the batched loop stays: equal at 2 threads there; more were not measured.
  const int64_t images = n > 1 && at::get_num_threads() == 1 ? n : 1;
  for (int64_t i = 0; i < images; ++i) {
    at::Tensor part = images == 1 ? buf : buf.narrow(0, i, 1);
    int64_t channels_i = c;
    for (size_t l = 0; l < tensors.size(); ++l) {
      channels_i = layer_forward(part, channels_i, tensors[l], ints[l]);
    }
  }
  return buf;
}

