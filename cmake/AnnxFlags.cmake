# Warnings, sanitizers and the opt-in native build. Applied through the annx_flags
# interface target so that every annx target gets the same set.
add_library(annx_flags INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(annx_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter)
  if(ANNX_WERROR)
    target_compile_options(annx_flags INTERFACE -Werror)
  endif()
  # Kernels are measured with -O3; no -ffast-math anywhere (NaN checks and exact
  # tie handling rely on IEEE semantics).
  target_compile_options(annx_flags INTERFACE $<$<CONFIG:Release>:-O3>)
  if(ANNX_NATIVE)
    target_compile_options(annx_flags INTERFACE -march=native)
  endif()
  if(ANNX_SANITIZE)
    target_compile_options(annx_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(annx_flags INTERFACE -fsanitize=address,undefined)
  endif()
elseif(MSVC)
  target_compile_options(annx_flags INTERFACE /W4 /permissive-)
endif()
