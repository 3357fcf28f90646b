// AVX-512 F/BW/DQ/VL level (compiled with those flags only here).
#define ANNX_AVX512_NS avx512
#define ANNX_AVX512_ICL 0
#include "x86_avx512-inl.h"
