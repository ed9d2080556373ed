// check.cuh: error checks for CUDA runtime calls; a failure is a rank-local
// RuntimeError naming the call, its file and line.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/errors.hpp"

#define PARALAB_CUDA_CHECK(call)                                                          \
  do {                                                                                    \
    cudaError_t paralab_status_ = (call);                                                 \
    if (paralab_status_ != cudaSuccess)                                                   \
      throw ::paralab::RuntimeError(std::string(#call) + " failed at " + __FILE__ + ":" + \
                                    std::to_string(__LINE__) + ": " +                     \
                                    cudaGetErrorString(paralab_status_));                 \
  } while (0)
