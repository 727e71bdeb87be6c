// 3x3 group convolution (stride 1, padding 1) with 8 groups of few channels, the shape
// where oneDNN is slowest (at 112x112 its dense kernel doing 8x the arithmetic beats its
// grouped one); the C++ loop of the fused dense stage (dense_stage.cpp) uses it for layers
// with 8 groups on wide maps.
#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "mmcnv2_ops.h"

namespace {

// The 8 groups are the 8 lanes of one AVX2 vector: the input is
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

// Declared in mmcnv2_ops.h.
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

