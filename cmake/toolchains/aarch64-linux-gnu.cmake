# Cross build for aarch64 (Grace and other Arm hosts) with Debian's cross compiler and arm64
# multiarch libraries; tests run under qemu-user. Used by scripts/test-aarch64.sh:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DPARALAB_KERNELS_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Debian's multiarch layout: arm64 libraries and their CMake packages under
# /usr/lib/aarch64-linux-gnu, headers shared in /usr/include.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# ctest (and gtest_discover_tests) run the test binaries through qemu-user. The CPU it
# emulates comes from QEMU_CPU in the environment (scripts/test-aarch64.sh: `max`, which has
# NEON, SVE and SVE2, at the SVE vector lengths of Grace and others). The arm64 C library is
# the multiarch one (libc6:arm64, /lib/ld-linux-aarch64.so.1), not the cross compiler's copy
# under /usr/aarch64-linux-gnu: with that one (qemu's -L) every new thread hangs in qemu 7.2.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
