#!/usr/bin/env bash
# check_docs_tree.sh SOURCE_DIR BUILD_DIR: README.md and docs/architecture.md
# follow the tree. Every lib/ folder, every app and every ctest label must be
# named in both, so that a new library, app or label cannot land undocumented
# (README lists lib/<name> in its layout and the labels in its test line;
# architecture.md names each library folder as <name>/, each app, and each
# label as `label` in its testing map).
set -uo pipefail
src=$1 build=$2
readme="$src/README.md" arch="$src/docs/architecture.md"
missing=()
need() {  # FILE PATTERN WHAT
  grep -qE -- "$2" "$1" || missing+=("$(basename "$1"): $3")
}
for dir in "$src"/lib/*/; do
  name=$(basename "$dir")
  need "$readme" "lib/$name\\b" "lib folder lib/$name"
  need "$arch" "(^|[^a-z_])$name/" "lib folder $name/"
done
for dir in "$src"/apps/*/; do
  name=$(basename "$dir")
  need "$readme" "\`$name\`" "app $name"
  need "$arch" "\\b$name\\b" "app $name"
done
labels=$(cd "$build" && ctest --print-labels 2>/dev/null | sed -n 's/^  //p')
[[ -n "$labels" ]] || { echo "no ctest labels found in $build"; exit 1; }
label_line=$(grep -E "ctest -L .*# labels:" "$readme")
for label in $labels; do
  grep -qw -- "$label" <<<"$label_line" || missing+=("README.md: ctest label $label (the '# labels:' line)")
  need "$arch" "\`$label\`" "ctest label \`$label\` (testing map)"
done
if ((${#missing[@]})); then
  printf 'documentation does not follow the tree; missing:\n'
  printf '  %s\n' "${missing[@]}"
  exit 1
fi
echo "ok: README.md and docs/architecture.md name every lib folder, app and ctest label"
