# As aarch64-linux-gnu.cmake, with clang as the compiler (Debian's clang targets aarch64
# out of the box and uses the g++-aarch64-linux-gnu sysroot for headers and libraries).
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_C_COMPILER clang)
set(CMAKE_CXX_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
