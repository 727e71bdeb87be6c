// The loop of mmcnv2.models.layers.FusedSFRDenseStage in C++: the ATen calls of
// _FusedSFRLayer.forward and _FusedStageBody.forward, in the same order, without the Python
// interpreter between them (at batch 1 a layer on a 7x7 map makes some 40 calls, and from
// Python the time between them is as long as the time in them); and, for layers whose 3x3
// group convolution has 8 groups of few channels, a kernel of its own (below) instead of
// oneDNN's. Elsewhere the outputs are bit-identical to the Python loop's.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// 3x3 group convolution (stride 1, padding 1) with 8 groups of few channels, the shape
// where oneDNN is slowest (at 112x112 its dense kernel doing 8x the arithmetic beats its
// grouped one). The 8 groups are the 8 lanes of one AVX2 vector: the input is
// channels-last with channel j * 8 + g holding input j of group g ("j-major", which the
// fused layer's 1x1 product writes for free), so a tap is one load and one FMA per input
// of a group, and the arithmetic is the real one.
typedef float v8f __attribute__((vector_size(32)));
typedef float v8f_unaligned __attribute__((vector_size(32), aligned(4)));
#define LOAD8(p) (*reinterpret_cast<const v8f_unaligned*>(p))

// in: (N, H, W, ipg * 8), j-major; weight: (opg, 3, 3, ipg, 8); out: output channel
// g * opg + r of image i at out + i * out_n + (g * opg + r) * out_c + y * W + x.
// Rows [row_begin, row_end) of the N * H output rows. Inside a row, blocks of 8 pixels
// away from the left/right border share each weight load between 8 accumulators.
// Inlined into each wrapper below, so that it is compiled for the wrapper's target.
__attribute__((always_inline)) inline void grouped_conv3x3_rows(
    const float* in, const float* weight, float* out, int64_t H, int64_t W, int64_t ipg,
    int64_t opg, int64_t out_n, int64_t out_c, int64_t row_begin, int64_t row_end) {
  const int64_t C = ipg * 8;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t i = row / H, y = row % H;
    const int64_t dy0 = y == 0 ? 1 : 0, dy1 = y == H - 1 ? 2 : 3;
    const float* image = in + i * H * W * C;
    float* out_row = out + i * out_n + y * W;
    auto pixel = [&](int64_t x) {  // one output pixel, any position
      const int64_t dx0 = x == 0 ? 1 : 0, dx1 = x == W - 1 ? 2 : 3;
      for (int64_t r = 0; r < opg; ++r) {
        v8f acc = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t dy = dy0; dy < dy1; ++dy) {
          for (int64_t dx = dx0; dx < dx1; ++dx) {
            const float* ip = image + ((y + dy - 1) * W + (x + dx - 1)) * C;
            const float* wp = weight + ((r * 3 + dy) * 3 + dx) * C;
            for (int64_t j = 0; j < ipg; ++j) acc += LOAD8(ip + j * 8) * LOAD8(wp + j * 8);
          }
        }
        for (int64_t g = 0; g < 8; ++g) out_row[(g * opg + r) * out_c + x] = acc[g];
      }
    };
    int64_t x = 0;
    if (W >= 10) {
      pixel(0);
      for (x = 1; x + 9 <= W; x += 8) {  // pixels x .. x + 7, all taps inside the row
        for (int64_t r = 0; r < opg; ++r) {
          v8f acc[8];
          for (int p = 0; p < 8; ++p) acc[p] = v8f{0, 0, 0, 0, 0, 0, 0, 0};
          for (int64_t dy = dy0; dy < dy1; ++dy) {
            for (int64_t dx = 0; dx < 3; ++dx) {
              const float* ip = image + ((y + dy - 1) * W + (x + dx - 1)) * C;
              const float* wp = weight + ((r * 3 + dy) * 3 + dx) * C;
              for (int64_t j = 0; j < ipg; ++j) {
                const v8f wv = LOAD8(wp + j * 8);
                for (int p = 0; p < 8; ++p) acc[p] += LOAD8(ip + p * C + j * 8) * wv;
              }
            }
          }
          for (int64_t g = 0; g < 8; ++g) {
            float* o = out_row + (g * opg + r) * out_c + x;
            for (int p = 0; p < 8; ++p) o[p] = acc[p][g];
          }
        }
      }
    }
    for (; x < W; ++x) pixel(x);
  }
}

#if defined(__x86_64__) || defined(__i386__)
#define MMCNV2_X86 1
__attribute__((target("avx2,fma"))) void grouped_conv3x3_rows_avx2(
    const float* in, const float* weight, float* out, int64_t H, int64_t W, int64_t ipg,
    int64_t opg, int64_t out_n, int64_t out_c, int64_t row_begin, int64_t row_end) {
  grouped_conv3x3_rows(in, weight, out, H, W, ipg, opg, out_n, out_c, row_begin, row_end);
}
#endif

void grouped_conv3x3_rows_generic(const float* in, const float* weight, float* out, int64_t H,
                                  int64_t W, int64_t ipg, int64_t opg, int64_t out_n,
                                  int64_t out_c, int64_t row_begin, int64_t row_end) {
  grouped_conv3x3_rows(in, weight, out, H, W, ipg, opg, out_n, out_c, row_begin, row_end);
}

}  // namespace

namespace {

// Whether no two elements of t share memory. A sufficient test (exact for every layout
// PyTorch's own ops produce): taken by increasing stride, each dimension of size > 1 steps
// past everything the smaller ones span.
bool is_non_overlapping(const at::Tensor& t) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) > 1) dims.emplace_back(t.stride(d), t.size(d));
  }
  std::sort(dims.begin(), dims.end());
  int64_t extent = 1;  // elements spanned by the dimensions so far
  for (const auto& [stride, size] : dims) {
    if (stride < extent) return false;
    extent += stride * (size - 1);
  }
  return true;
}

// Whether the memory spans of a and b intersect (same storage, intersecting byte ranges).
bool memory_overlaps(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0 || b.numel() == 0 || !a.storage().is_alias_of(b.storage())) return false;
  auto span = [](const at::Tensor& t) {
    int64_t last = 0;
    for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
    const char* begin = static_cast<const char*>(t.data_ptr());
    return std::make_pair(begin, begin + (last + 1) * t.element_size());
  };
  const auto [a_begin, a_end] = span(a);
  const auto [b_begin, b_end] = span(b);
  return a_begin < b_end && b_begin < a_end;
}

void check_float_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, "grouped_conv3x3_g8: ", name,
              " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.device().is_cpu(), "grouped_conv3x3_g8: ", name, " must be on the CPU, got ",
              t.device());
}

}  // namespace

// Writes the convolution of y (N, H, W, 8 * ipg; channels-last contiguous, j-major) with
// weight (opg, 3, 3, ipg, 8) into out, an (N, 8 * opg, H, W) view with unit stride along W.
// Every argument is checked (dtype, device, sizes, strides, overlap): a bad one raises.
void grouped_conv3x3_g8(const at::Tensor& y, const at::Tensor& weight, at::Tensor& out) {
  check_float_cpu(y, "y");
  check_float_cpu(weight, "weight");
  check_float_cpu(out, "out");
  TORCH_CHECK(weight.dim() == 5 && weight.size(0) > 0 && weight.size(1) == 3 &&
                  weight.size(2) == 3 && weight.size(3) > 0 && weight.size(4) == 8,
              "grouped_conv3x3_g8: weight must have shape (opg, 3, 3, ipg, 8) with opg, ipg > 0,"
              " got ", weight.sizes());
  TORCH_CHECK(weight.is_contiguous(), "grouped_conv3x3_g8: weight must be contiguous, got "
              "strides ", weight.strides());
  const int64_t ipg = weight.size(3), opg = weight.size(0);
  TORCH_CHECK(y.dim() == 4 && y.size(3) == 8 * ipg,
              "grouped_conv3x3_g8: y must have shape (N, H, W, 8 * ipg) = (N, H, W, ", 8 * ipg,
              ") for weight ", weight.sizes(), ", got ", y.sizes());
  TORCH_CHECK(y.is_contiguous(), "grouped_conv3x3_g8: y must be contiguous (channels-last "
              "N, H, W, C), got strides ", y.strides());
  const int64_t N = y.size(0), H = y.size(1), W = y.size(2);
  TORCH_CHECK(out.dim() == 4 && out.size(0) == N && out.size(1) == 8 * opg && out.size(2) == H &&
                  out.size(3) == W,
              "grouped_conv3x3_g8: out must have shape (N, 8 * opg, H, W) = (", N, ", ", 8 * opg,
              ", ", H, ", ", W, "), got ", out.sizes());
  TORCH_CHECK((W <= 1 || out.stride(3) == 1) && (H <= 1 || out.stride(2) == W),
              "grouped_conv3x3_g8: out must have stride 1 along W and W along H (rows of "
              "contiguous pixels), got strides ", out.strides());
  TORCH_CHECK(is_non_overlapping(out), "grouped_conv3x3_g8: out overlaps itself (sizes ",
              out.sizes(), ", strides ", out.strides(), "): every output needs its own element");
  TORCH_CHECK(!memory_overlaps(out, y), "grouped_conv3x3_g8: out overlaps y in memory: the "
              "kernel reads y while it writes out");
  TORCH_CHECK(!memory_overlaps(out, weight), "grouped_conv3x3_g8: out overlaps weight in memory");
  const float* in = y.data_ptr<float>();
  const float* w = weight.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t out_n = out.stride(0), out_c = out.stride(1);
#ifdef MMCNV2_X86
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  [[maybe_unused]] const bool avx2 = false;
#endif
  at::parallel_for(0, N * H, 8, [&](int64_t begin, int64_t end) {
#ifdef MMCNV2_X86
    if (avx2) {
      grouped_conv3x3_rows_avx2(in, w, o, H, W, ipg, opg, out_n, out_c, begin, end);
      return;
    }
#endif
    grouped_conv3x3_rows_generic(in, w, o, H, W, ipg, opg, out_n, out_c, begin, end);
  });
}

namespace {

// Per-layer tensors, in the order _FusedSFRLayer.extension_args() lists them.
enum LayerTensor {
  kW1, kB1, kIndex1, kLower, kScaleIn, kShiftIn, kW2, kSeFc1T, kSeFc2T, kS3, kB3, kW3,
  kIndex3, kW1JMajor, kB1JMajor, kW2Kernel, kNumLayerTensors
};
// Per-layer ints, likewise.
enum LayerInt {
  kDense, kReluFolded, kAct1, kAct2, kAct3, kGroups3x3, kPadH, kPadW, kWithSe, kSfrGroups,
  kMid, kGrowth, kGroups, kKernel3x3, kNumLayerInts
};

// Their names in _FusedSFRLayer, for error messages.
constexpr const char* kTensorNames[kNumLayerTensors] = {
    "w1", "b1", "index1", "lower", "s_in", "b_in", "w2", "se_fc1_t", "se_fc2_t", "s3", "b3",
    "w3", "index3", "w1_jmajor", "b1_jmajor", "w2_kernel"};
constexpr const char* kIntNames[kNumLayerInts] = {
    "dense", "relu_folded", "act1", "act2", "act3", "groups3x3", "padding[0]", "padding[1]",
    "with_se", "sfr_groups", "mid", "growth", "groups", "kernel3x3"};
// Activation codes: those of mmcnv2.models.layers.fused_dense_stage._ACTIVATIONS.
constexpr int64_t kNumActivations = 3;

// Checks layer i's arguments against each other and against its c input channels and the
// stage input x (dtype, device), before anything runs: a bad argument raises, naming itself,
// instead of dividing by zero, reading out of bounds or computing something else.
void check_layer(size_t i, int64_t c, const std::vector<at::Tensor>& t,
                 const std::vector<int64_t>& v, const at::Tensor& x) {
  auto name = [&](int k) { return kIntNames[k]; };
  for (int k : {kDense, kReluFolded, kWithSe, kKernel3x3}) {
    TORCH_CHECK(v[k] == 0 || v[k] == 1, "dense_stage_forward: layer ", i, ": ", name(k),
                " must be 0 or 1, got ", v[k]);
  }
  for (int k : {kAct1, kAct2, kAct3}) {
    TORCH_CHECK(v[k] >= 0 && v[k] < kNumActivations, "dense_stage_forward: layer ", i, ": ",
                name(k), " must be an activation code in {0: identity, 1: ReLU, 2: h-swish}, "
                "got ", v[k]);
  }
  for (int k : {kGroups, kSfrGroups, kGroups3x3, kMid, kGrowth}) {
    TORCH_CHECK(v[k] > 0, "dense_stage_forward: layer ", i, ": ", name(k), " must be > 0, got ",
                v[k]);
  }
  for (int k : {kPadH, kPadW}) {
    TORCH_CHECK(v[k] >= 0, "dense_stage_forward: layer ", i, ": ", name(k), " must be >= 0, got ",
                v[k]);
  }
  const int64_t mid = v[kMid], k = v[kGrowth], groups = v[kGroups], sg = v[kSfrGroups],
                g3 = v[kGroups3x3];
  const bool dense = v[kDense], kernel = v[kKernel3x3];
  auto divides = [&](int a, int b) {  // ints a divides ints b
    TORCH_CHECK(v[b] % v[a] == 0, "dense_stage_forward: layer ", i, ": ", name(a), " (", v[a],
                ") must divide ", name(b), " (", v[b], ")");
  };
  divides(kGroups, kMid);
  divides(kGroups3x3, kMid);
  divides(kGroups3x3, kGrowth);
  divides(kSfrGroups, kGrowth);
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
  int64_t read = c;  // channels the learned group convolution reads
  if (dense) {
    check(kW1, {mid, c});
    check(kB1, {mid});
  } else {
    const int64_t selected = t[kIndex1].defined() ? t[kIndex1].numel() : 0;
    TORCH_CHECK(selected > 0 && selected % groups == 0, "dense_stage_forward: layer ", i,
                ": index1 must hold a positive multiple of groups (", groups, ") entries, got ",
                selected);
    check(kIndex1, {selected}, true);
    check(kW1, {groups, mid / groups, selected / groups});
    check(kB1, {groups, mid / groups, 1});
    read = selected;
  }
  if (v[kReluFolded]) {
    check(kLower, {read, 1});
  } else {
    check(kScaleIn, {read, 1});
    check(kShiftIn, {read, 1});
  }
  const at::Tensor& w2 = t[kW2];
  TORCH_CHECK(w2.defined() && w2.dim() == 4, "dense_stage_forward: layer ", i,
              ": w2 must be 4-D (growth, mid / groups3x3, kh, kw), got ",
              w2.defined() ? w2.sizes() : at::IntArrayRef());
  check(kW2, {k, mid / g3, w2.size(2), w2.size(3)});
  TORCH_CHECK(w2.size(2) == 2 * v[kPadH] + 1 && w2.size(3) == 2 * v[kPadW] + 1,
              "dense_stage_forward: layer ", i, ": w2's kernel ", w2.size(2), "x", w2.size(3),
              " and padding ", v[kPadH], ", ", v[kPadW], " must keep the map size (kernel = 2 * "
              "padding + 1)");
  if (v[kWithSe]) {
    const int64_t r = t[kSeFc1T].defined() && t[kSeFc1T].dim() == 2 ? t[kSeFc1T].size(1) : -1;
    check(kSeFc1T, {k, r});
    check(kSeFc2T, {r, k});
  }
  check(kS3, {k, 1});
  check(kB3, {k, 1});
  if (dense) {
    check(kW3, {c, k});
  } else {
    const int64_t kept = t[kIndex3].defined() ? t[kIndex3].numel() : 0;
    TORCH_CHECK(kept > 0 && kept % sg == 0, "dense_stage_forward: layer ", i,
                ": index3 must hold a positive multiple of sfr_groups (", sg, ") entries, got ",
                kept);
    check(kIndex3, {kept}, true);
    check(kW3, {sg, kept / sg, k / sg});
  }
  if (kernel) {
    check(kW2Kernel, {k / 8, 3, 3, mid / 8, 8});
    if (dense) {
      check(kW1JMajor, {mid, c});
      check(kB1JMajor, {mid});
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
  const int64_t mid = v[kMid], k = v[kGrowth], groups = v[kGroups];
  const bool dense = v[kDense] != 0;
  // the layer's own 3x3 kernel: its input channels j-major (input j of group g at j * 8 + g)
  const bool kernel = v[kKernel3x3] && w >= kKernelMinWidth &&
                      buf.scalar_type() == at::kFloat && buf.device().is_cpu();
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
  if (dense) {  // j-major: the rows of the 1x1 weight reordered
    y = at::linear(n == 1 ? x[0].t() : x.transpose(1, 2), t[kernel ? kW1JMajor : kW1],
                   t[kernel ? kB1JMajor : kB1])
            .view({n, hw, mid});
  } else {
    // the shuffle: row q of LGC group g is channel q * G + g; j-major, with q = a * s + b
    // (s = mid / G / G), that channel is input j = b * G + g of 3x3 group a, at j * G + a
    const int64_t s = mid / groups / groups;
    x = x.view({n, groups, x.size(1) / groups, hw});
    if (n == 1 && hw <= 1024) {  // (G, hw, mid/G)
      y = at::baddbmm(t[kB1].transpose(1, 2), x[0].transpose(1, 2), t[kW1].transpose(1, 2));
      y = kernel ? y.view({groups, hw, groups, s}).permute({1, 3, 0, 2}) : y.permute({1, 2, 0});
    } else {  // (n, G, mid/G, hw)
      y = n == 1 ? at::baddbmm(t[kB1], t[kW1], x[0]).unsqueeze(0)
                 : at::matmul(t[kW1], x).add_(t[kB1]);
      y = kernel ? y.view({n, groups, groups, s, hw}).permute({0, 4, 3, 1, 2})
                 : y.permute({0, 3, 2, 1});
    }
    y = y.reshape({n, hw, mid});
  }
  y = act_(y, v[kAct2]).view({n, h, w, mid}).permute({0, 3, 1, 2});
  // 3x3 group convolution, then the SE gate; the result goes into its slice of the buffer
  at::Tensor out = buf.slice(1, c, c + k);
  at::Tensor conv;  // the convolution's own output, when it cannot write into out
  if (kernel) {
    // (channels-last already, but for the dense 1x1 at batch > 1, where linear() leaves
    // its output (n, mid, hw)-major)
    grouped_conv3x3_g8(y.permute({0, 2, 3, 1}).contiguous(), t[kW2Kernel], out);
  } else {
    conv = at::conv2d(y, t[kW2], {}, {1, 1}, {v[kPadH], v[kPadW]}, {1, 1}, v[kGroups3x3]);
  }
  if (v[kWithSe]) {  // fc2(relu(fc1(mean))) = fc2(relu(fc1(sum))) / hw
    at::Tensor gate = at::mm((conv.defined() ? conv : out).sum({2, 3}), t[kSeFc1T]);
    at::relu_(gate);
    gate = at::mm(gate, t[kSeFc2T]);
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
      feats[0].index_add_(0, t[kIndex3], react.view({t[kIndex3].numel(), hw}));
    } else {
      at::Tensor react = at::matmul(t[kW3], r.view({n, k / sg, sg, hw}).transpose(1, 2));
      feats.index_add_(1, t[kIndex3], react.view({n, t[kIndex3].numel(), hw}));
    }
  }
  return c + k;
}

}  // namespace

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
    TORCH_CHECK(tensors[i].size() == kNumLayerTensors && ints[i].size() == kNumLayerInts,
                "dense_stage_forward: layer ", i, " has ", tensors[i].size(), " tensors and ",
                ints[i].size(), " ints, expected ", static_cast<int>(kNumLayerTensors), " and ",
                static_cast<int>(kNumLayerInts));
    check_layer(i, channels, tensors[i], ints[i], x);
    channels += ints[i][kGrowth];
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
  for (size_t i = 0; i < tensors.size(); ++i) {
    c = layer_forward(buf, c, tensors[i], ints[i]);
  }
  return buf;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmcnv2's fused CondenseNetV2 dense stage loop (ATen calls only)";
  // What mmcnv2/ops/__init__.py expects: bump with any change of the arguments' layout or of
  // what the functions accept (4: every argument validated).
  m.attr("ABI_VERSION") = 4;
  m.def("grouped_conv3x3_g8", &grouped_conv3x3_g8,
        "3x3 group convolution, 8 groups as vector lanes: y (N, H, W, 8 * ipg) j-major, "
        "weight (opg, 3, 3, ipg, 8), out (N, 8 * opg, H, W) written in place");
  m.def("dense_stage_forward", &dense_stage_forward,
        "Forward of a FusedSFRDenseStage: input, downsample, out_channels, per-layer tensors, "
        "per-layer ints");
}
