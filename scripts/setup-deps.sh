#!/usr/bin/env bash
# Installs what paralab needs from Debian's packages, and only what is missing.
# Idempotent: a second run on a set-up machine does nothing but check.
#   scripts/setup-deps.sh           build, test and plot dependencies
#   scripts/setup-deps.sh --slurm   also Slurm and munge (for the slurm-labelled test)
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libcli11-dev nlohmann-json3-dev
  libopenblas-dev libopenblas0-openmp  # the OpenMP build: see kernels/CMakeLists.txt
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-h5py python3-matplotlib python3-numpy
  clang-format
  fortunes  # the byte-level text corpus of bf16_train (/usr/share/games/fortunes)
)
if [[ "${1:-}" == "--slurm" ]]; then
  packages+=(slurm-wlm munge)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-deps: done"
