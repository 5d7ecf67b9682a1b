#!/usr/bin/env bash
# Installs hakit: the four static binaries, man pages, bash/zsh/fish completions, the
# templates and examples under share/hakit, the units, and a default /etc/hakit/hakit.toml
# (mode 0600) that configures nothing until edited. An existing config is never touched.
#
# Usage: install.sh BIN_DIR GEN_DIR
#   BIN_DIR  the static binaries (make static: target/x86_64-unknown-linux-musl/release)
#   GEN_DIR  hakit-docgen's output (make docs: target/docgen)
# Environment: DESTDIR (staging root, default empty), PREFIX (default /usr: the keepalived
#   templates and the units call /usr/sbin/nat-notify and /usr/sbin/ha-check),
#   SYSCONFDIR (default /etc: the binaries look for /etc/hakit/hakit.toml whatever PREFIX is)
# Exit codes: 0 installed, 1 a file is missing or could not be installed, 2 usage error
set -euo pipefail

[ $# -eq 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
bin_dir=$1 gen_dir=$2
DESTDIR=${DESTDIR:-} PREFIX=${PREFIX:-/usr} SYSCONFDIR=${SYSCONFDIR:-/etc}
top=$(cd "$(dirname "$0")/.." && pwd)
bins=(garp-burst nat-notify ha-check fip-claim)

root=$DESTDIR$PREFIX
share=$root/share
doc=$share/doc/hakit

fail() { echo "install: $*" >&2; exit 1; }
for b in "${bins[@]}"; do [ -x "$bin_dir/$b" ] || fail "$bin_dir/$b missing: run make static"; done
[ -d "$gen_dir/man/man8" ] || fail "$gen_dir/man/man8 missing: run make docs"
[ -f "$gen_dir/THIRD-PARTY-NOTICES" ] || fail "$gen_dir/THIRD-PARTY-NOTICES missing: run make docs"

install -d -m 0755 "$root/sbin" "$share/man/man8" "$share/man/man5" "$share/bash-completion/completions" \
  "$share/zsh/vendor-completions" "$share/fish/vendor_completions.d" "$doc"
for b in "${bins[@]}"; do
  install -m 0755 "$bin_dir/$b" "$root/sbin/$b"
  install -m 0644 "$gen_dir/completions/bash/$b" "$share/bash-completion/completions/$b"
  install -m 0644 "$gen_dir/completions/zsh/_$b" "$share/zsh/vendor-completions/_$b"
  install -m 0644 "$gen_dir/completions/fish/$b.fish" "$share/fish/vendor_completions.d/$b.fish"
done
for page in "$gen_dir"/man/man8/*.8; do
  # -n: no name or time stamp in the header, so the same input gives the same package.
  gzip -9n -c "$page" > "$share/man/man8/$(basename "$page").gz"
  chmod 0644 "$share/man/man8/$(basename "$page").gz"
done

# The licences and notices of the crates linked into the binaries (MIT, BSD-3-Clause and
# ISC require them in binary redistributions).
gzip -9n -c "$gen_dir/THIRD-PARTY-NOTICES" > "$doc/THIRD-PARTY-NOTICES.gz"
chmod 0644 "$doc/THIRD-PARTY-NOTICES.gz"

# hakit.toml(5), generated from the configuration schema.
gzip -9n -c "$gen_dir/man/man5/hakit.toml.5" > "$share/man/man5/hakit.toml.5.gz"
chmod 0644 "$share/man/man5/hakit.toml.5.gz"

# hakit-setup renders a node's files from the templates under share/hakit, and the examples
# (pair.values, Linode's and AWS's extra files) live there too: not only in the doc directory,
# which minimal and container images leave out.
install -m 0755 "$top/scripts/hakit-setup" "$root/sbin/hakit-setup"
gzip -9n -c "$top/packaging/hakit-setup.8" > "$share/man/man8/hakit-setup.8.gz"
chmod 0644 "$share/man/man8/hakit-setup.8.gz"
(cd "$top" && find keepalived examples -type f) | while read -r f; do
  install -D -m 0644 "$top/$f" "$share/hakit/$f"
done
chmod 0755 "$share/hakit/keepalived/render"
# Boot-time pieces systemd reads from /usr/lib whatever the prefix: the runtime directories
# (tmpfiles.d) and nf_conntrack before systemd-sysctl (modules-load.d).
lib=$DESTDIR/usr/lib
[ "$PREFIX" = /usr ] || lib=$root/lib
install -D -m 0644 "$top/packaging/tmpfiles.conf" "$lib/tmpfiles.d/hakit.conf"
install -D -m 0644 "$top/packaging/modules-load.conf" "$lib/modules-load.d/hakit.conf"
# The peer-watch unit (AWS without keepalived), its peer from the configuration; installed,
# never enabled by the package.
install -D -m 0644 "$top/packaging/hakit-watch.service" "$lib/systemd/system/hakit-watch.service"
# The uplink monitor the keepalived templates read through track_file (enabled by the
# examples' install steps, not by the package).
install -D -m 0644 "$top/packaging/hakit-monitor.service" "$lib/systemd/system/hakit-monitor.service"
# keepalived real-time by inheritance (a drop-in for Debian's and RHEL's keepalived.service).
install -D -m 0644 "$top/packaging/keepalived-realtime.conf" "$lib/systemd/system/keepalived.service.d/hakit-realtime.conf"
install -D -m 0644 "$top/packaging/keepalived-stop.conf" "$lib/systemd/system/keepalived.service.d/hakit-stop.conf"

# The runbook and the README (the templates and examples are in share/hakit, once: a second
# copy here is waste, as rpmlint says).
(cd "$top" && find docs -type f) | while read -r f; do
  install -D -m 0644 "$top/$f" "$doc/$f"
done
install -m 0644 "$top/README.md" "$doc/README.md"

# The default config: the annotated example with every setting commented out, so a fresh
# install does nothing until the operator chooses a cloud. Mode 0600: it will hold tokens.
conf=$DESTDIR$SYSCONFDIR/hakit/hakit.toml
install -d -m 0755 "$DESTDIR$SYSCONFDIR/hakit"
if [ -e "$conf" ]; then
  echo "install: keeping the existing $conf"
else
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  {
    echo "# hakit's configuration: nothing is configured yet. Start from the example for your"
    echo "# cloud in $PREFIX/share/hakit/examples/ (linode, aws, hetzner, digitalocean, active-active,"
    echo "# bare-metal, drbd-nfs) or uncomment below. Keep this file mode 0600: it may hold tokens."
    echo "#"
    sed -e 's/^\([^#[:space:]]\)/# \1/' "$top/examples/hakit.toml"
  } > "$tmp"
  install -m 0600 "$tmp" "$conf"
fi
echo "install: hakit installed in $root (config $conf)"
