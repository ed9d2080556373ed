#!/usr/bin/env bash
# Packs what a bare GPU machine lacks to build and run paralab (Open MPI,
# HDF5, CLI11, nlohmann-json, GoogleTest, Google Benchmark, OpenBLAS) into
# .device/ (git-ignored): the Debian packages and the libraries they load,
# unpacked with dpkg -x and compressed into .device/deps.tar.xz (the device
# tool carries at most 64 MiB), plus .device/env.sh, which unpacks them into
# /tmp/paralab-deps and points PATH, LD_LIBRARY_PATH, CPATH and CMake there.
#
# Here:   scripts/device-bundle.sh
# There (carry .device):
#   source .device/env.sh && cmake -S . -B build-gpu -DPARALAB_CUDA=ON $PARALAB_DEVICE_CMAKE_FLAGS && \
#     cmake --build build-gpu -j16 && (cd build-gpu && ctest -L 'cuda|mpi|unit')
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device
root=$(mktemp -d)
debs=$(mktemp -d)
trap 'rm -rf "$root" "$debs"' EXIT
mkdir -p .device

# The development packages, then the runtime libraries that comm_bench,
# mpirun and Open MPI's plugins load (from ldd on this machine), less glibc
# and libstdc++, which every image has.
packages=(
  openmpi-bin openmpi-common libopenmpi-dev libopenmpi3 libpmix2 libhwloc15 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 ibverbs-providers librdmacm1 libpsm2-2
  libpsm-infinipath1 libnl-3-200 libnl-route-3-200 libnuma1 libmunge2
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libcurl4 hdf5-tools
  libcli11-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev libbenchmark1debian
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread libopenblas0 libgfortran5
)
(cd "$debs" && apt-get download "${packages[@]}" 2>&1 | grep -v "unsandboxed" || true)
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
# Static archives, Fortran modules and docs would only push the carry past 64 MiB.
find "$root" -name '*.a' -delete
rm -rf "$root"/usr/share/{doc,man,lintian} "$root"/usr/lib/x86_64-linux-gnu/fortran
# dpkg -x sets up no alternatives: give the wrappers their usual names.
for tool in mpicc mpicxx mpirun mpiexec; do
  ln -sf "$(basename "$(readlink -f /usr/bin/$tool)")" "$root/usr/bin/$tool"
done
ln -sf ../lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 "$root/usr/lib/libopenblas.so.0" 2>/dev/null || true

tar -C "$root" -cJf .device/deps.tar.xz .

cat > .device/env.sh <<'ENV'
# Source from the repository root on the GPU machine.
d=/tmp/paralab-deps
if [[ ! -d $d ]]; then mkdir -p $d && tar -C $d -xJf .device/deps.tar.xz; fi
export PATH=$d/usr/bin:$PATH
export LD_LIBRARY_PATH=$d/usr/lib/x86_64-linux-gnu:$d/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
export CPATH=$d/usr/include:$d/usr/include/hdf5/serial:${CPATH:-}
export CMAKE_PREFIX_PATH=$d/usr:$d/usr/lib/x86_64-linux-gnu/cmake:${CMAKE_PREFIX_PATH:-}
export OPAL_PREFIX=$d/usr OPAL_LIBDIR=$d/usr/lib/x86_64-linux-gnu/openmpi/lib
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export HDF5_ROOT=$d/usr/lib/x86_64-linux-gnu/hdf5/serial
export PARALAB_DEVICE_CMAKE_FLAGS="-DMPI_C_COMPILER=$d/usr/bin/mpicc -DMPIEXEC_EXECUTABLE=$d/usr/bin/mpirun"
ENV
du -sh .device | cut -f1 | xargs echo ".device/ holds (carry at most 64 MiB)"
