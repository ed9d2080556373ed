#!/usr/bin/env bash
# Installs what paralab needs from Debian's packages, and only what is missing.
# Idempotent: a second run on a set-up machine does nothing but check.
#   scripts/setup-deps.sh             build, test and plot dependencies
#   scripts/setup-deps.sh --slurm     also Slurm and munge (for the slurm-labelled test)
#   scripts/setup-deps.sh --aarch64   also the aarch64 cross toolchain, qemu-user and the arm64
#                                     libraries of the kernel tests (scripts/test-aarch64.sh)
# (flags combine)
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libcli11-dev nlohmann-json3-dev
  libhwy-dev  # Google Highway, the portable SIMD layer of the CPU kernels (kernels/cpu/isa.hpp)
  libopenblas-dev libopenblas0-openmp  # the OpenMP build: see kernels/CMakeLists.txt
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-h5py python3-matplotlib python3-numpy
  clang-format
  fortunes  # the byte-level text corpus of bf16_train (/usr/share/games/fortunes)
  libzfp-dev  # compress_peers: ZFP, a peer of our compressor (issue 5)
  clang libclang-rt-dev libomp-dev  # tests/fuzz: libFuzzer, the sanitizers, OpenMP for clang
  python3-pip  # installs pysz below
)
aarch64=0
for flag in "$@"; do
  case "$flag" in
    --slurm) packages+=(slurm-wlm munge) ;;
    --aarch64)
      aarch64=1
      # libc6/libgomp1/libstdc++6:arm64: qemu-user runs the tests on the multiarch C library
      # (with the cross compiler's copy every new thread hangs in qemu 7.2).
      packages+=(g++-aarch64-linux-gnu qemu-user libc6:arm64 libgomp1:arm64 libstdc++6:arm64
        libhwy-dev:arm64 libopenblas-dev:arm64 libgtest-dev:arm64) ;;
    *) echo "setup-deps: unknown option $flag (--slurm, --aarch64)" >&2; exit 1 ;;
  esac
done

# Python packages Debian does not ship, from PyPI into the system python3
# (the one scripts run with): pysz, SZ3's own bindings (scripts/compress_peers.py).
python_packages=(pysz)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
missing_python=()
for p in "${python_packages[@]}"; do
  if ! /usr/bin/python3 -c "import $p" 2>/dev/null; then
    missing_python+=("$p")
  fi
done
if ((${#missing[@]} == 0 && ${#missing_python[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
if ((${#missing[@]} > 0)); then
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ((aarch64)) && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ((${#missing_python[@]} > 0)); then
  echo "setup-deps: installing ${missing_python[*]} (pip)"
  # Debian marks its python3 externally managed; these packages touch none of its own.
  # Not fatal: only scripts use them, and they say what is missing.
  $sudo /usr/bin/python3 -m pip install -q --break-system-packages "${missing_python[@]}" ||
    echo "setup-deps: warning: pip could not install ${missing_python[*]}"
fi
echo "setup-deps: done"
