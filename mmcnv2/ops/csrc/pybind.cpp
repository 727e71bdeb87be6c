// The Python bindings of mmcnv2's compiled operators (mmcnv2._ext), and the layout of the
// dense stage loop's arguments they were built with, which mmcnv2/ops/__init__.py checks
// against mmcnv2/ops/dense_stage_layout.py when it loads them.
#include <torch/extension.h>

#include "dense_stage_layout.h"
#include "mmcnv2_ops.h"

#define MMCNV2_NAME(name) #name,

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmcnv2's fused CondenseNetV2 dense stage loop (ATen calls only)";
  m.attr("ABI_VERSION") = MMCNV2_ABI_VERSION;
  m.attr("LAYER_TENSORS") = std::vector<std::string>{MMCNV2_LAYER_TENSORS(MMCNV2_NAME)};
  m.attr("LAYER_INTS") = std::vector<std::string>{MMCNV2_LAYER_INTS(MMCNV2_NAME)};
  m.def("grouped_conv3x3_g8", &grouped_conv3x3_g8,
        "3x3 group convolution, 8 groups as vector lanes: y (N, H, W, 8 * ipg) j-major, "
        "weight (opg, 3, 3, ipg, 8), out (N, 8 * opg, H, W) written in place");
  m.def("dense_stage_forward", &dense_stage_forward,
        "Forward of a FusedSFRDenseStage: input, downsample, out_channels, per-layer tensors "
        "and ints in the order of LAYER_TENSORS and LAYER_INTS");
}
