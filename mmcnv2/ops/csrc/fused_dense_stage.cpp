// The loop of mmcnv2.models.layers.FusedSFRDenseStage in C++: the ATen calls of
// _FusedSFRLayer.forward and _FusedStageBody.forward, in the same order, without the Python
// interpreter between them (at batch 1 a layer on a 7x7 map makes some 40 calls, and from
// Python the time between them is as long as the time in them); and, for layers whose 3x3
// group convolution has 8 groups of few channels, a kernel of its own (below) instead of
// oneDNN's. Elsewhere the outputs are bit-identical to the Python loop's.
#include <ATen/Parallel.h>
#include <torch/extension.h>

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

// Writes the convolution of y (N, H, W, 8 * ipg; channels-last contiguous, j-major) with
// weight (opg, 3, 3, ipg, 8) into out, an (N, 8 * opg, H, W) view with unit stride along W.
void grouped_conv3x3_g8(const at::Tensor& y, const at::Tensor& weight, at::Tensor& out) {
  TORCH_CHECK(y.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                  out.scalar_type() == at::kFloat && y.device().is_cpu() &&
                  weight.device().is_cpu() && out.device().is_cpu(),
              "grouped_conv3x3_g8: float32 CPU tensors only");
  TORCH_CHECK(y.dim() == 4 && y.is_contiguous() && weight.dim() == 5 && weight.size(1) == 3 &&
                  weight.size(2) == 3 && weight.size(4) == 8 && weight.is_contiguous(),
              "grouped_conv3x3_g8: expected y (N, H, W, 8 * ipg) and weight (opg, 3, 3, ipg, 8)"
              ", both contiguous; got y ", y.sizes(), " strides ", y.strides(), ", weight ",
              weight.sizes(), " strides ", weight.strides());
  const int64_t N = y.size(0), H = y.size(1), W = y.size(2), ipg = weight.size(3),
                opg = weight.size(0);
  TORCH_CHECK(y.size(3) == 8 * ipg && out.dim() == 4 && out.size(0) == N &&
                  out.size(1) == 8 * opg && out.size(2) == H && out.size(3) == W &&
                  out.stride(3) == 1 && out.stride(2) == W,
              "grouped_conv3x3_g8: shapes of y, weight and out do not match");
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
    x = x.view({n, groups, -1, hw});
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
  m.attr("ABI_VERSION") = 3;
  m.def("grouped_conv3x3_g8", &grouped_conv3x3_g8,
        "3x3 group convolution, 8 groups as vector lanes: y (N, H, W, 8 * ipg) j-major, "
        "weight (opg, 3, 3, ipg, 8), out (N, 8 * opg, H, W) written in place");
  m.def("dense_stage_forward", &dense_stage_forward,
        "Forward of a FusedSFRDenseStage: input, downsample, out_channels, per-layer tensors, "
        "per-layer ints");
}
