#!/usr/bin/env bash
# hakit on arm64 (AWS Graviton and the like), run here under qemu-user:
#   1. the .deb (and an RPM built here) is arm64 and carries exactly the aarch64 binaries
#      that were built, and each of them runs (--version names the commit);
#   2. the library crates' unit tests, built for aarch64-unknown-linux-musl, pass under qemu;
#   3. the namespace tests that cross the kernel boundary run against the aarch64 binaries:
#      garp-burst's frames on the wire and the neighbours that learn from them (packet
#      sockets), nat-notify's address add/remove (netlink) with nft and conntrackd, ha-check's
#      ICMP/TCP/HTTP probes and TLS with a private CA, fip-claim against the fake provider.
#      The tests are the x86_64 test programs; HAKIT_TEST_BIN_DIR points them at wrappers that
#      exec qemu-aarch64-static on each binary, and every wrapper run is counted, so a test run
#      that never reached the aarch64 binaries fails.
# Usage: tests/arm64.sh BIN_DIR DEB   (root; under CI=true nothing may be skipped)
# Exit codes: 0 passed, 1 a check failed, 2 usage error
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
bin_dir=$(cd "$1" && pwd) deb=$2
top=$(cd "$(dirname "$0")/.." && pwd)
cargo=${CARGO:-cargo}
bins=(garp-burst nat-notify ha-check fip-claim)
fail() { echo "arm64: FAIL: $*" >&2; exit 1; }

qemu=$(command -v qemu-aarch64-static) || fail "qemu-aarch64-static not found (make deps installs it)"
work=$(mktemp -d /tmp/hakit-arm64.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. The package and its binaries.
[ "$(dpkg-deb --field "$deb" Architecture)" = arm64 ] || fail "$deb: Architecture is not arm64"
dpkg-deb -x "$deb" "$work/root"
for b in "${bins[@]}"; do
  f=$bin_dir/$b
  file -b "$f" | grep -q "ARM aarch64" || fail "$b is not an aarch64 binary: $(file -b "$f")"
  cmp -s "$f" "$work/root/usr/sbin/$b" || fail "the .deb's /usr/sbin/$b is not the binary built"
  v=$("$qemu" "$work/root/usr/sbin/$b" --version) || fail "$b --version under qemu"
  case "$v" in *"${HAKIT_COMMIT:-}"*) ;; *) fail "$b --version does not name ${HAKIT_COMMIT:-}: $v" ;; esac
  echo "arm64: $v"
done

# The RPM too (aarch64, the same binaries).
rpm=$("$top/scripts/mkrpm.sh" "$bin_dir" "$top/target/docgen" "$work/rpm" 2>/dev/null) || fail "mkrpm for aarch64"
[ "$(rpm -qp --qf '%{ARCH}' "$rpm")" = aarch64 ] || fail "$rpm: ARCH is not aarch64"
mkdir -p "$work/rpmroot"
(cd "$work/rpmroot" && rpm2cpio "$rpm" | cpio -idm --quiet)
for b in "${bins[@]}"; do
  cmp -s "$bin_dir/$b" "$work/rpmroot/usr/sbin/$b" || fail "the RPM's /usr/sbin/$b is not the binary built"
done
echo "arm64: $(basename "$deb") and $(basename "$rpm") carry the aarch64 binaries"

# 2. Unit tests of the library crates, for aarch64, under qemu (the runner is
#    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER, set by the Makefile).
: "${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER:?run from make arm64}"
cd "$top"
$cargo test --target aarch64-unknown-linux-musl --lib \
  -p hakit-core -p hakit-net -p hakit-fip -p hakit-check -p hakit-notify -p hakit-bgp -p hakit-cli \
  > "$work/unit.log" 2>&1 || { tail -40 "$work/unit.log" >&2; fail "unit tests under qemu"; }
grep -E '^test result' "$work/unit.log" | sed 's/^/arm64: unit: /'
grep -q '^test result: ok' "$work/unit.log" || fail "no unit test ran"

# 3. The kernel boundary, through the aarch64 binaries.
mkdir -p "$work/run"
for b in "${bins[@]}"; do
  printf '#!/bin/sh\necho %s >> %s/ran\nexec %s %s "$@"\n' "$b" "$work" "$qemu" "$bin_dir/$b" > "$work/run/$b"
  chmod 755 "$work/run/$b"
done
HAKIT_TEST_BIN_DIR=$work/run $cargo test \
  --test garp_burst --test nat_notify --test ha_check --test fip_claim_rest -- --include-ignored \
  frames_on_the_wire_are_exact_and_spaced neighbours_learn_the_new_mac refusals_exit_2 \
  master_then_backup_with_real_nft_and_conntrackd \
  every_probe_passes_then_each_fails https_verifies_against_the_given_ca \
  linode_shares_the_union hetzner_and_digitalocean_poll_their_actions \
  > "$work/ns.log" 2>&1 || { tail -60 "$work/ns.log" >&2; fail "namespace tests on the aarch64 binaries"; }
grep -E '^test .* (ok|FAILED)$' "$work/ns.log" | sed 's/^/arm64: /'
n=$(grep -c '^test .* ok$' "$work/ns.log" || true)
[ "$n" -ge 8 ] || fail "only $n namespace tests passed (8 expected)"
for b in "${bins[@]}"; do
  c=$(grep -cx "$b" "$work/ran" || true)
  [ "$c" -gt 0 ] || fail "no test ran the aarch64 $b"
  echo "arm64: $b ran $c times under qemu"
done
echo "arm64: all checks passed"
