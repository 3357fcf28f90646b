# Cross build for 64-bit ARM Linux with Debian's cross compiler, tests run under qemu:
#   apt-get install g++-aarch64-linux-gnu qemu-user
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DANNX_BUILD_TESTS=ON
#   cmake --build build-arm -j2 && ctest --test-dir build-arm --output-on-failure
# The Python module is not cross-built (ANNX_BUILD_PYTHON defaults to OFF when cross
# compiling); the C++ library, its NEON kernels and the C++ tests are. Timings under
# emulation say nothing about ARM hardware.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(_annx_triple aarch64-linux-gnu)
set(CMAKE_CXX_COMPILER ${_annx_triple}-g++)
set(CMAKE_C_COMPILER ${_annx_triple}-gcc)

set(CMAKE_FIND_ROOT_PATH /usr/${_annx_triple})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and try_run) run the target programs through qemu-user; -L points the emulated
# dynamic loader at the cross sysroot's libc and libstdc++.
find_program(ANNX_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(ANNX_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ANNX_QEMU_AARCH64};-L;/usr/${_annx_triple})
endif()
