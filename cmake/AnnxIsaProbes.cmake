# Probe, at configure time, which ISA kernel sets this compiler can build. Each set
# lives in its own translation unit compiled with its own flags; the baseline stays
# generic and the fastest available set is chosen at run time (cpp/src/simd/).
include(CheckCXXSourceCompiles)

set(ANNX_ISA_X86 OFF)
set(ANNX_ISA_ARM OFF)
# The target architecture: CMAKE_SYSTEM_PROCESSOR, unless macOS is asked for one other
# architecture (CMAKE_OSX_ARCHITECTURES, e.g. an arm64 wheel built on an x86_64 runner).
# A universal2 build (two architectures at once) gets the portable kernels only.
set(_annx_arch "${CMAKE_SYSTEM_PROCESSOR}")
if(APPLE AND CMAKE_OSX_ARCHITECTURES)
  list(LENGTH CMAKE_OSX_ARCHITECTURES _annx_narch)
  if(_annx_narch EQUAL 1)
    set(_annx_arch "${CMAKE_OSX_ARCHITECTURES}")
  else()
    set(_annx_arch "universal")
  endif()
endif()
if(_annx_arch MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$")
  set(ANNX_ISA_X86 ON)
elseif(_annx_arch MATCHES "^(aarch64|arm64|ARM64)$")
  set(ANNX_ISA_ARM ON)
endif()

set(ANNX_FLAGS_AVX2 "")
set(ANNX_FLAGS_AVX512 "")
set(ANNX_FLAGS_AVX512_ICL "")
set(ANNX_HAVE_AVX2 OFF)
set(ANNX_HAVE_AVX512 OFF)
set(ANNX_HAVE_AVX512_ICL OFF)

function(annx_probe var flags source)
  set(CMAKE_REQUIRED_FLAGS "${flags}")
  check_cxx_source_compiles("${source}" ${var})
  set(${var} ${${var}} PARENT_SCOPE)
endfunction()

if(ANNX_ISA_X86 AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set(_avx2 "-mavx2 -mfma -mf16c -mpopcnt")
  annx_probe(ANNX_PROBE_AVX2 "${_avx2}" "
    #include <immintrin.h>
    int main() { __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(1.f), _mm256_set1_ps(2.f), _mm256_cvtph_ps(_mm_set1_epi16(0)));
                 return (int)_mm256_cvtss_f32(a) + (int)_mm_popcnt_u64(3); }")
  set(_avx512 "${_avx2} -mavx512f -mavx512bw -mavx512dq -mavx512vl")
  annx_probe(ANNX_PROBE_AVX512 "${_avx512}" "
    #include <immintrin.h>
    int main() { __m512 a = _mm512_maskz_loadu_ps(3, nullptr); __m512i b = _mm512_cvtepi8_epi16(_mm256_setzero_si256());
                 return (int)_mm512_reduce_add_ps(a) + _mm512_reduce_add_epi32(_mm512_madd_epi16(b, b)); }")
  set(_icl "${_avx512} -mavx512vnni -mavx512vpopcntdq -mavx512vbmi")
  annx_probe(ANNX_PROBE_AVX512_ICL "${_icl}" "
    #include <immintrin.h>
    int main() { __m512i z = _mm512_permutex2var_epi8(_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
                 return (int)_mm512_reduce_add_epi64(_mm512_popcnt_epi64(z)) + _mm512_reduce_add_epi32(_mm512_dpwssd_epi32(z, z, z)); }")
  if(ANNX_PROBE_AVX2)
    set(ANNX_HAVE_AVX2 ON)
    set(ANNX_FLAGS_AVX2 ${_avx2})
  endif()
  if(ANNX_PROBE_AVX512)
    set(ANNX_HAVE_AVX512 ON)
    set(ANNX_FLAGS_AVX512 ${_avx512})
  endif()
  if(ANNX_PROBE_AVX512_ICL)
    set(ANNX_HAVE_AVX512_ICL ON)
    set(ANNX_FLAGS_AVX512_ICL ${_icl})
  endif()
endif()

# AArch64: NEON is baseline (no flags); the CRC32C instructions need +crc for one file.
set(ANNX_HAVE_NEON OFF)
set(ANNX_HAVE_CRC_ARM OFF)
set(ANNX_FLAGS_CRC_ARM "")
if(ANNX_ISA_ARM AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  annx_probe(ANNX_PROBE_NEON "" "
    #include <arm_neon.h>
    int main() { uint8x16_t z = vdupq_n_u8(1); float32x4_t f = vcvt_f32_f16(vcvt_f16_f32(vdupq_n_f32(1.f)));
                 return (int)vaddlvq_u8(vcntq_u8(vqtbl1q_u8(z, z))) + (int)vaddvq_f32(vfmaq_f32(f, f, f)); }")
  annx_probe(ANNX_PROBE_CRC_ARM "-march=armv8-a+crc" "
    #include <arm_acle.h>
    int main() { return (int)__crc32cd(0u, 1ull) + (int)__crc32cb(0u, 1); }")
  if(ANNX_PROBE_NEON)
    set(ANNX_HAVE_NEON ON)
  endif()
  if(ANNX_PROBE_CRC_ARM)
    set(ANNX_HAVE_CRC_ARM ON)
    set(ANNX_FLAGS_CRC_ARM "-march=armv8-a+crc")
  endif()
  # No fused multiply-add contraction on AArch64 (where the baseline has FMA): the scalar
  # reference and the kernels documented as bit-identical to it (nearest_l2_small, PQ ADC)
  # must round every product, as they do on x86. Explicit vfmaq_f32 calls are unaffected.
  target_compile_options(annx_flags INTERFACE -ffp-contract=off)
endif()
message(STATUS "annx ISA kernels: avx2=${ANNX_HAVE_AVX2} avx512=${ANNX_HAVE_AVX512} avx512_icl=${ANNX_HAVE_AVX512_ICL} neon=${ANNX_HAVE_NEON}")
