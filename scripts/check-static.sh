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
  size=$(stat -c %s "$f")
  limit=2621440            # 2.5 MiB
  [ "$b" = garp-burst ] && limit=1048576   # 1 MiB
  printf 'static: %-12s %8d bytes (limit %d)  %s\n' "$b" "$size" "$limit" "${kind%%,*}"
  [ "$size" -le "$limit" ] || { echo "static: $b is over its size limit" >&2; fail=1; }
done
exit $fail
