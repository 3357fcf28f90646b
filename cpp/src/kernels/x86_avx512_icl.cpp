// AVX-512 + VNNI + VPOPCNTDQ + VBMI level (Ice Lake, Sapphire Rapids, Zen 4).
#define ANNX_AVX512_NS avx512_icl
#define ANNX_AVX512_ICL 1
#include "x86_avx512-inl.h"
