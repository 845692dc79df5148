// Self-contained basics for NVRTC: pip's NVRTC ships no CUDA headers, so no <cstdint>,
// <cuda_bf16.h> or <cuda.h> here. Half and bfloat16 values travel as raw 16-bit words and
// are converted with PTX cvt (see ptx_sm80.cuh).
#pragma once

typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;

#define NA_DEVICE __device__ __forceinline__

// Named float constants: no bare magic numbers in the math.
constexpr float kLog2e = 1.4426950408889634f;
#define NA_NEG_INF (__int_as_float(0xff800000))
