#!/usr/bin/env bash
# Checks every static binary: fully static per `file`, and within its size budget.
# Usage: check-static.sh DIR NAME...
set -euo pipefail
dir=$1; shift
fail=0
for b in "$@"; do
  f="$dir/$b"
  [ -f "$f" ] || { echo "static: $f missing" >&2; fail=1; continue; }
  kind=$(file -b "$f")
  case "$kind" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) echo "static: $b is not static: $kind" >&2; fail=1 ;;
  esac
  # The unwind tables are dropped after every build (drop-unwind-tables.sh): a binary
  # that still has them was not made by `make static`.
  if command -v readelf >/dev/null && readelf -S -W "$f" | grep -q ' \.eh_frame '; then
    echo "static: $b still has .eh_frame: run scripts/drop-unwind-tables.sh (make static does)" >&2; fail=1
  fi
  size=$(stat -c %s "$f")
  limit=2621440            # 2.5 MiB
  [ "$b" = garp-burst ] && limit=1048576   # 1 MiB
  printf 'static: %-12s %8d bytes (limit %d)  %s\n' "$b" "$size" "$limit" "${kind%%,*}"
  [ "$size" -le "$limit" ] || { echo "static: $b is over its size limit" >&2; fail=1; }
done
# hakit's own debug lines (-v) survive the release build's release_max_level_info, which
# compiles only the dependencies' out (hakit_core::debug!). Runs where the binary runs.
if [ -x "$dir/ha-check" ] && "$dir/ha-check" --version >/dev/null 2>&1 && command -v nft >/dev/null; then
  out=$("$dir/ha-check" -v nft-rule --snat-source 198.51.100.0/24 --to 203.0.113.10 2>&1 || true)
  case "$out" in
    *"debug: "*"run: nft"*) echo "static: ha-check -v logs hakit's debug lines" ;;
    *) echo "static: ha-check -v shows no debug line: $out" >&2; fail=1 ;;
  esac
fi
exit $fail
