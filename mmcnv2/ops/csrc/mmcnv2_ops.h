// Declarations of mmcnv2's compiled operators (mmcnv2._ext), shared by their sources:
// grouped_conv3x3_g8.cpp (the kernel), dense_stage.cpp (the loop of a fused dense stage) and
// pybind.cpp (the Python bindings).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

// 3x3 group convolution (stride 1, padding 1) with 8 groups as the lanes of a vector:
// y (N, H, W, 8 * ipg) channels-last contiguous, j-major; weight (opg, 3, 3, ipg, 8); out an
// (N, 8 * opg, H, W) view with unit stride along W, written in place. Every argument is
// checked (dtype, device, sizes, strides, overlap): a bad one raises.
void grouped_conv3x3_g8(const at::Tensor& y, const at::Tensor& weight, at::Tensor& out);

// The loop of mmcnv2.models.layers.FusedSFRDenseStage: per layer, the tensors and ints named
// in dense_stage_layout.h (generated from mmcnv2/ops/dense_stage_layout.py), in that order.
at::Tensor dense_stage_forward(const at::Tensor& x, bool downsample, int64_t out_channels,
                               const std::vector<std::vector<at::Tensor>>& tensors,
                               const std::vector<std::vector<int64_t>>& ints);
