#!/usr/bin/env bash
# Replaces the text between the VECTORS:BEGIN and VECTORS:END markers of a
# markdown file with the contents of another file.
# Usage: scripts/splice-vectors.sh DOC.md VECTORS.md
set -euo pipefail
doc=$1 vectors=$2
tmp=$(mktemp)
awk -v vf="$vectors" '
  /<!-- VECTORS:BEGIN/ { print; while ((getline line < vf) > 0) print line; skip = 1; next }
  /<!-- VECTORS:END/ { skip = 0 }
  !skip { print }
' "$doc" > "$tmp"
mv "$tmp" "$doc"
