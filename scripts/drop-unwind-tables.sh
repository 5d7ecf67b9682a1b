#!/usr/bin/env bash
# Removes the unwind tables (.eh_frame, .gcc_except_table) from static release binaries,
# in place. hakit's binaries are built with panic = "abort": nothing ever unwinds, and no
# error hakit reports carries a backtrace, so the tables (~300 KB in ha-check, 11 % of it)
# are dead weight; .eh_frame_hdr is already left out at link time (.cargo/config.toml).
# A panic still prints its message and aborts (a backtrace asked for with RUST_BACKTRACE
# then has no frames). Idempotent. Cargo hard-links a fresh copy with the tables back at
# its next build of these binaries, so `make static` runs this after every build.
# Usage: drop-unwind-tables.sh DIR NAME...
set -euo pipefail
dir=$1; shift
for b in "$@"; do
  f="$dir/$b"
  [ -f "$f" ] || { echo "drop-unwind-tables: $f missing" >&2; exit 1; }
  case "$(file -b "$f")" in
    *aarch64*) objcopy=${OBJCOPY_ARM64:-aarch64-linux-gnu-objcopy} ;;
    *x86-64*) objcopy=${OBJCOPY:-objcopy} ;;
    *) echo "drop-unwind-tables: $f: not an x86-64 or aarch64 binary" >&2; exit 1 ;;
  esac
  command -v "$objcopy" >/dev/null || { echo "drop-unwind-tables: $objcopy not found (binutils)" >&2; exit 1; }
  # A new file, renamed over the old: the hard link to cargo's deps/ copy is broken, never
  # written through.
  "$objcopy" --remove-section=.eh_frame --remove-section=.gcc_except_table "$f" "$f.tmp"
  mv -f "$f.tmp" "$f"
done
