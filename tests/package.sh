#!/usr/bin/env bash
# The packaging test (make package, part of make test):
#  1. make install's script into a staging root: every file where it belongs with its
#     mode, the default config 0600 and loadable by every binary, a re-install keeps an
#     edited config;
#  2. the .deb from mkdeb.sh: control fields, conffiles, owners and modes in the archive,
#     and lintian finds no error and no warning;
#  3. dpkg -i into a private root (dpkg --root, so the machine's own package database is
#     never touched): the installed binaries run, the man page renders, the bash
#     completion completes; a re-install (an upgrade) keeps the edited config without a
#     prompt; dpkg -r removes everything but the config and what hakit-setup rendered (and
#     the metrics files), dpkg -P removes what hakit-setup rendered and puts back a file it
#     replaced, keeps the operator's values file, and nothing else is left behind. (The
#     scripts' systemd side runs in the systemd lab: make syslab.)
# Needs root (dpkg's ownership); without root it skips loudly, under CI=true it fails.
#
# Usage: tests/package.sh BIN_DIR GEN_DIR OUT_DIR
set -euo pipefail

[ $# -eq 3 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
bin_dir=$1 gen_dir=$2
top=$(cd "$(dirname "$0")/.." && pwd)
bins=(garp-burst nat-notify ha-check fip-claim)

if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "package: FAILED: needs root and CI=true forbids skipping" >&2
    exit 1
  fi
  echo "package: SKIPPED (needs root for dpkg): run as root to test the package" >&2
  exit 0
fi

work=$(mktemp -d /tmp/hakit-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
checks=0
fail() { echo "package: FAILED: $*" >&2; exit 1; }
ok() { checks=$((checks + 1)); }
mode_of() { stat -c %a "$1"; }

# 1. make install ----------------------------------------------------------------------
stage=$work/stage
DESTDIR=$stage PREFIX=/opt/hakit SYSCONFDIR=/etc "$top/scripts/install.sh" "$bin_dir" "$gen_dir" >/dev/null
for b in "${bins[@]}"; do
  f=$stage/opt/hakit/sbin/$b
  [ "$(mode_of "$f")" = 755 ] || fail "$f mode $(mode_of "$f"), want 755"
  cmp -s "$f" "$bin_dir/$b" || fail "$f is not the static binary"
  [ -f "$stage/opt/hakit/share/man/man8/$b.8.gz" ] || fail "man page of $b missing"
  [ -f "$stage/opt/hakit/share/bash-completion/completions/$b" ] || fail "bash completion of $b missing"
  [ -f "$stage/opt/hakit/share/zsh/vendor-completions/_$b" ] || fail "zsh completion of $b missing"
  [ -f "$stage/opt/hakit/share/fish/vendor_completions.d/$b.fish" ] || fail "fish completion of $b missing"
  ok
done
pages=$(find "$stage/opt/hakit/share/man/man8" -name '*.8.gz' | wc -l)
# The generated pages plus hakit-setup(8), which is written by hand (a shell script).
[ "$pages" -eq "$(( $(find "$gen_dir/man/man8" -name '*.8' | wc -l) + 1 ))" ] || fail "$pages man pages installed"
for f in keepalived/keepalived.conf.in keepalived/vrrp-instance.conf.in keepalived/nftables.conf.in keepalived/conntrackd.conf.in \
         keepalived/sysctl.d/90-hakit.conf.in examples/aws/iam-policy.json \
         examples/monitoring/hakit-alerts.yml docs/runbook-failover.md README.md; do
  case $f in docs/*|README.md) at=doc/hakit ;; *) at=hakit ;; esac
  cmp -s "$stage/opt/hakit/share/$at/$f" "$top/$f" || fail "share/$at/$f missing or different"
  ok
done
conf=$stage/etc/hakit/hakit.toml
[ "$(mode_of "$conf")" = 600 ] || fail "$conf mode $(mode_of "$conf"), want 600"
grep -q '^[^#]' "$conf" && fail "the default config sets something: $(grep -m1 '^[^#]' "$conf")"
# Every key of the example is there, commented, ready to uncomment.
grep -q '^# floating_ips = \["203.0.113.10/32"\]' "$conf" || fail "default config lacks the commented example"
ok
# Every binary loads the default config (a parse error would name the file and line) and
# then says what is missing: the file was read and configures nothing.
expect_missing() { # binary, expected message, args...
  local b=$1 want=$2 msg rc
  shift 2
  set +e
  msg=$("$stage/opt/hakit/sbin/$b" --config "$conf" --syslog-socket /dev/null "$@" 2>&1 </dev/null)
  rc=$?
  set -e
  { [ $rc -eq 2 ] && [[ $msg == *"$want"* ]]; } || fail "$b with the default config: exit $rc: $msg"
  ok
}
expect_missing garp-burst "no interface"
expect_missing nat-notify "no instance configured" status
expect_missing ha-check "no probes"
expect_missing fip-claim "no provider"
# A second install keeps the operator's config.
echo '# edited' >> "$conf"
DESTDIR=$stage PREFIX=/opt/hakit SYSCONFDIR=/etc "$top/scripts/install.sh" "$bin_dir" "$gen_dir" >/dev/null
tail -n1 "$conf" | grep -qx '# edited' || fail "re-install overwrote the edited config"
ok

# 2. the .deb ----------------------------------------------------------------------------
deb=$("$top/scripts/mkdeb.sh" "$bin_dir" "$gen_dir" "$work/deb" 2>/dev/null)
[ -f "$deb" ] || fail "mkdeb.sh made no package"
dpkg-deb --field "$deb" Package | grep -qx hakit || fail "Package field"
dpkg-deb --field "$deb" Architecture | grep -qx amd64 || fail "Architecture field"
# Static binaries need no library; the one dependency is netbase's /etc/protocols, where
# conntrackd resolves the protocols it synchronises (without it it synchronises nothing).
[ "$(dpkg-deb --field "$deb" Depends)" = netbase ] || fail "Depends: $(dpkg-deb --field "$deb" Depends), want netbase alone"
# No conffile: hakit-setup rewrites the config, and a conffile it rewrote would make an
# upgrade stop at a prompt. The default ships under /usr/share and the postinst installs it.
dpkg-deb --info "$deb" conffiles >/dev/null 2>&1 && fail "the package has conffiles: $(dpkg-deb --info "$deb" conffiles)"
listing=$(dpkg-deb --contents "$deb")
grep -q ' \./etc/' <<<"$listing" && fail "the package ships files in /etc: $(grep ' \./etc/' <<<"$listing")"
grep -q '^-rw-r--r-- root/root .* \./usr/share/hakit/hakit\.toml$' <<<"$listing" \
  || fail "the default config is not in the archive as /usr/share/hakit/hakit.toml"
for b in "${bins[@]}"; do
  grep -q "^-rwxr-xr-x root/root .* \./usr/sbin/$b\$" <<<"$listing" || fail "/usr/sbin/$b in the archive"
done
grep -v ' root/root ' <<<"$listing" && fail "files not owned by root"
# What a node needs beyond the binaries: the setup command and its templates, the runtime
# directories at every boot (keepalived's notify FIFO lives in /run/keepalived, which nothing
# else creates), nf_conntrack before systemd-sysctl, and a postinst making the directories now.
for f in ./usr/sbin/hakit-setup ./usr/lib/tmpfiles.d/hakit.conf ./usr/lib/modules-load.d/hakit.conf \
         ./usr/lib/systemd/system/hakit-watch.service ./usr/lib/systemd/system/hakit-monitor.service ./usr/share/man/man5/hakit.toml.5.gz \
         ./usr/lib/systemd/system/keepalived.service.d/hakit-realtime.conf \
         ./usr/lib/systemd/system/keepalived.service.d/hakit-stop.conf \
         ./usr/share/hakit/keepalived/nftables.conf.in ./usr/share/hakit/keepalived/render \
         ./usr/share/hakit/examples/bare-metal/hakit.toml.in ./usr/share/hakit/examples/bare-metal/pair.values \
         ./usr/share/hakit/examples/linode/lelastic.service ./usr/share/hakit/examples/aws/iam-policy.json; do
  grep -q " $f\$" <<<"$listing" || fail "$f is not in the package"
done
# The lab's templates are a test tool: nothing of crates/lab reaches a node.
grep -q 'lab' <<<"$(grep ' \./usr/share/hakit/keepalived/' <<<"$listing")" && fail "a lab template is in the package"
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/lib/tmpfiles.d/hakit.conf | grep -q '^d /run/keepalived 0755 root root' \
  || fail "tmpfiles.d does not create /run/keepalived"
dpkg-deb --info "$deb" postinst | grep -q 'systemd-tmpfiles --create hakit.conf' || fail "postinst does not create the runtime directories"
# Each script carries all the functions and uses some (SC2317: the others "unreachable").
for s in postinst prerm postrm; do
  dpkg-deb --info "$deb" "$s" > "$work/$s" || fail "the package has no $s"
  command -v shellcheck >/dev/null && { shellcheck -s sh -e SC2317 "$work/$s" || fail "$s: shellcheck"; }
done
# Binary redistribution carries the linked crates' licences and notices.
notices=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/doc/hakit/THIRD-PARTY-NOTICES.gz | gunzip)
for want in 'neli 0.7.5 .*BSD-3-Clause' 'rustls-webpki .*ISC' '^--- LICENSE' 'ring 0.17'; do
  grep -q "$want" <<<"$notices" || fail "THIRD-PARTY-NOTICES lacks $want"
done
copyright=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/doc/hakit/copyright)
for l in BSD-3-Clause ISC MIT THIRD-PARTY-NOTICES; do
  grep -q "$l" <<<"$copyright" || fail "copyright does not name $l"
done
ok
# Debian's own package checker: no error, no warning (the two intended ones, static
# binaries and the 0600 config, are overridden in the package with a reason).
if command -v lintian >/dev/null; then
  lintian --fail-on error,warning "$deb" 2>/dev/null || fail "lintian: $(lintian "$deb" 2>&1)"
  ok
elif [ "${CI:-}" = true ]; then
  fail "lintian is not installed (make deps installs it); CI=true forbids skipping"
else
  echo "package: SKIPPED the lintian check: lintian is not installed (make deps installs it)" >&2
fi

# 3. dpkg -i / -r / -P in a private root ---------------------------------------------------
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: > "$root/var/lib/dpkg/status"
# The private root has no netbase (the one Depends): --force-depends.
dpkgr() { dpkg --root="$root" --log=/dev/null --force-script-chrootless --force-depends "$@"; }
dpkgr -i "$deb" >/dev/null || fail "dpkg -i"
dpkgr -s hakit | grep -qx 'Status: install ok installed' || fail "not installed after dpkg -i"
[ "$(mode_of "$root/etc/hakit/hakit.toml")" = 600 ] || fail "installed config mode $(mode_of "$root/etc/hakit/hakit.toml")"
for b in "${bins[@]}"; do
  v=$("$root/usr/sbin/$b" --version) || fail "$b --version"
  # The package's version, and the commit when the build named one (make exports HAKIT_COMMIT).
  want="$b $(dpkg-deb --field "$deb" Version)"
  [ -z "${HAKIT_COMMIT:-}" ] || want="$want (commit $HAKIT_COMMIT)"
  [ "$v" = "$want" ] || fail "$b --version says $v, not $want"
done
ok
if command -v man >/dev/null; then
  page=$(MANWIDTH=100 LC_ALL=C man --warnings=all -P cat -l "$root/usr/share/man/man8/nat-notify.8.gz" 2>&1)
  grep -q '^EXIT STATUS' <<<"$page" || fail "installed man page does not render: $page"
  ok
fi
words=$(bash --norc -c 'source "$1"; COMP_WORDS=(nat-notify ma); COMP_CWORD=1
  _nat__notify nat-notify ma nat-notify; echo "${COMPREPLY[*]}"' bash \
  "$root/usr/share/bash-completion/completions/nat-notify")
[ "$words" = "master master-rx-lower-pri" ] || fail "installed bash completion offers: $words"
ok
# The operator edits the config; a re-install (dpkg's upgrade path) keeps it, silently.
echo '# edited' >> "$root/etc/hakit/hakit.toml"
dpkgr -i "$deb" < /dev/null > "$work/reinstall.log" 2>&1 || fail "dpkg -i over the installed package: $(cat "$work/reinstall.log")"
tail -n1 "$root/etc/hakit/hakit.toml" | grep -qx '# edited' || fail "an upgrade overwrote the edited config"
[ "$(mode_of "$root/etc/hakit/hakit.toml")" = 600 ] || fail "config mode after the upgrade"
ok
# What a node set up by hakit-setup has besides the package's files: the rendered files
# (one of them replaced another package's file, kept as .hakit-old), the metrics, a drain
# flag, and the operator's values file.
rendered='# Rendered by: hakit-setup --node a pair.values (profile bare-metal; edit the values, not this file)'
mkdir -p "$root/etc/sysctl.d" "$root/etc/keepalived" "$root/etc/conntrackd" \
  "$root/var/lib/prometheus/node-exporter" "$root/var/lib/hakit"
for f in etc/sysctl.d/90-hakit.conf etc/keepalived/keepalived.conf etc/conntrackd/conntrackd.conf; do
  printf '%s\nrendered\n' "$rendered" > "$root/$f"
done
printf '#!/usr/sbin/nft -f\n%s\nrendered\n' "$rendered" > "$root/etc/nftables.conf"
echo 'the distribution s ruleset' > "$root/etc/nftables.conf.hakit-old"
echo 'A_LAN=198.51.100.2' > "$root/etc/hakit/pair.values"
touch "$root/var/lib/prometheus/node-exporter/hakit_nat_notify.prom" "$root/var/lib/hakit/drain"
dpkgr -r hakit >/dev/null 2>&1 || fail "dpkg -r"
[ -e "$root/var/lib/prometheus/node-exporter/hakit_nat_notify.prom" ] && fail "dpkg -r left hakit's metrics for node_exporter to serve"
left=$(cd "$root" && find . -mindepth 1 -path ./var/lib/dpkg -prune -o -type f -print | sort | tr '\n' ' ')
[ "$left" = "./etc/conntrackd/conntrackd.conf ./etc/hakit/hakit.toml ./etc/hakit/pair.values ./etc/keepalived/keepalived.conf ./etc/nftables.conf ./etc/nftables.conf.hakit-old ./etc/sysctl.d/90-hakit.conf ./var/lib/hakit/drain " ] \
  || fail "dpkg -r left other files than the configuration: $left"
said=$(dpkgr -P hakit 2>&1) || fail "dpkg -P: $said"
[ "$(cat "$root/etc/nftables.conf")" = 'the distribution s ruleset' ] || fail "dpkg -P did not put back the ruleset hakit-setup replaced"
grep -q 'conntrackd.conf is still hakit-setup' <<<"$said" || fail "dpkg -P did not say that conntrackd.conf is still hakit's: $said"
grep -q '/etc/hakit kept' <<<"$said" || fail "dpkg -P did not say why /etc/hakit stays: $said"
left=$(cd "$root" && find . -mindepth 1 -path ./var/lib/dpkg -prune -o -type f -print | sort | tr '\n' ' ')
[ "$left" = "./etc/conntrackd/conntrackd.conf ./etc/hakit/pair.values ./etc/nftables.conf " ] \
  || fail "dpkg -P left files behind (or removed the operator's): $left"
rm -r "${root:?}/etc"
left=$(cd "$root" && find . -mindepth 1 -path ./var/lib/dpkg -prune -o -print | sort | tr '\n' ' ')
[ "$left" = "./var ./var/lib ./var/lib/prometheus ./var/lib/prometheus/node-exporter " ] || fail "dpkg -P left files behind: $left"
dpkgr -s hakit >/dev/null 2>&1 && fail "still known to dpkg after dpkg -P"
ok

echo "package: $checks checks passed ($(basename "$deb"), $(du -k "$deb" | cut -f1) KiB)"
