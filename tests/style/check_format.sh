#!/usr/bin/env bash
# Fails when a C++ or CUDA source in the repository is not clang-formatted
# (the .clang-format at the root). Usage: check_format.sh SOURCE_DIR
set -uo pipefail
cd "$1" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
bad=()
while IFS= read -r -d '' file; do
  clang-format --dry-run -Werror "$file" >/dev/null 2>&1 || bad+=("$file")
done < <(find apps lib kernels tests -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' \
           -o -name '*.cuh' \) -print0 2>/dev/null)
if ((${#bad[@]})); then
  printf 'not clang-formatted (run make format):\n'; printf '  %s\n' "${bad[@]}"; exit 1
fi
echo "all sources clang-formatted"
