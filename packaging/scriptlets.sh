#!/bin/sh
# hakit's package scriptlets, one body for the .deb (postinst, prerm, postrm) and the .rpm
# (%post, %preun, %postun): mkdeb.sh and mkrpm.sh paste this file into each script and
# append one call. POSIX sh; every path under $DPKG_ROOT (dpkg --root with
# --force-script-chrootless, as tests/package.sh installs), systemd touched only on a
# running systemd outside such a root.
#
# What a gateway needs from them:
#  - install and upgrade: runtime directories now (tmpfiles.d), systemd reloaded (the units
#    and keepalived's drop-in are read again), the default config only where there is none
#    (hakit-setup rewrites /etc/hakit/hakit.toml, so it is not a conffile: an upgrade never
#    prompts); on upgrade hakit's own units restarted if they run (try-restart) and
#    keepalived never (a restart on the MASTER is a failover): its nat-notify FIFO reader
#    keeps the previous binary until the operator restarts keepalived while the node is
#    BACKUP, which is said, and which `nat-notify status` reports until done;
#  - remove: nothing of hakit left running or enabled: its units stopped and disabled, and
#    keepalived too when its configuration is hakit-setup's (it calls binaries that are
#    going: the node leaves the pair now, gracefully, rather than fail every event later);
#    the metrics files go (node_exporter would serve the last state for ever);
#  - purge: what hakit-setup rendered goes, a file it replaced comes back; the values file,
#    the operator's own, stays.

hakit_root=${DPKG_ROOT:-}
hakit_units="hakit-monitor.service hakit-watch.service"
hakit_keepalived_conf=/etc/keepalived/keepalived.conf

hakit_say() { echo "hakit: $*" >&2; }

hakit_systemd() { [ -z "$hakit_root" ] && [ -d /run/systemd/system ]; }

# Whether FILE was rendered by hakit-setup (its header, on line 1, or 2 after a #! line).
hakit_rendered() { head -n 2 "$hakit_root$1" 2>/dev/null | grep -q '^# Rendered by: hakit-setup'; }

hakit_configure() { # $1: the version upgraded from, empty on a first install
  if [ ! -e "$hakit_root/etc/hakit/hakit.toml" ]; then
    install -d -m 0755 "$hakit_root/etc/hakit"
    install -m 0600 "$hakit_root/usr/share/hakit/hakit.toml" "$hakit_root/etc/hakit/hakit.toml"
  fi
  hakit_systemd || return 0
  systemd-tmpfiles --create hakit.conf >/dev/null 2>&1 || hakit_say "systemd-tmpfiles --create hakit.conf failed"
  systemctl daemon-reload >/dev/null 2>&1 || hakit_say "systemctl daemon-reload failed"
  [ -n "$1" ] || return 0
  for u in $hakit_units; do
    if systemctl is-active --quiet "$u"; then
      systemctl try-restart "$u" || hakit_say "restarting $u on the new binaries failed: systemctl status $u"
    fi
  done
  if hakit_rendered "$hakit_keepalived_conf" && systemctl is-active --quiet keepalived.service; then
    hakit_say "keepalived's FIFO reader still runs the nat-notify of $1: restart keepalived on this node while it is BACKUP (on the MASTER: ha-check drain first); nat-notify status reports it until then"
  fi
}

hakit_remove() {
  hakit_systemd || return 0
  for u in $hakit_units; do
    systemctl disable --now --quiet "$u" >/dev/null 2>&1 || true
  done
  if hakit_rendered "$hakit_keepalived_conf"; then
    if systemctl is-active --quiet keepalived.service; then
      hakit_say "stopping keepalived: $hakit_keepalived_conf (hakit-setup's) calls hakit's binaries; this node leaves the pair now"
      systemctl stop keepalived.service || hakit_say "systemctl stop keepalived failed"
    fi
    if systemctl is-enabled --quiet keepalived.service 2>/dev/null; then
      systemctl disable --quiet keepalived.service || true
      hakit_say "keepalived disabled (enable it again with a configuration of your own)"
    fi
  fi
}

hakit_removed() {
  rm -f "$hakit_root"/var/lib/prometheus/node-exporter/hakit_*.prom
  rm -rf "$hakit_root/run/hakit" "$hakit_root/run/hakit-monitor"
  if hakit_systemd; then
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
}

hakit_purge() {
  hakit_removed
  rm -rf "$hakit_root/var/lib/hakit"
  rm -f "$hakit_root/etc/hakit/hakit.toml" "$hakit_root/etc/hakit/hakit.toml.hakit-old"
  for f in /etc/sysctl.d/90-hakit.conf "$hakit_keepalived_conf" /etc/nftables.conf \
           /etc/sysconfig/nftables.conf /etc/conntrackd/conntrackd.conf; do
    p=$hakit_root$f
    if [ -e "$p.hakit-old" ] && ! hakit_rendered "$f.hakit-old"; then
      mv -f "$p.hakit-old" "$p"
      hakit_say "$f: the file hakit-setup replaced is back"
      continue
    fi
    rm -f "$p.hakit-old"
    hakit_rendered "$f" || continue
    case $f in
      /etc/nftables.conf|/etc/sysconfig/nftables.conf|/etc/conntrackd/conntrackd.conf)
        # Another package's file: never left missing (nftables.service would fail).
        hakit_say "$f is still hakit-setup's (no earlier file to restore): edit or replace it" ;;
      *) rm -f "$p" ;;
    esac
  done
  if [ -d "$hakit_root/etc/hakit" ] && ! rmdir "$hakit_root/etc/hakit" 2>/dev/null; then
    hakit_say "/etc/hakit kept: it holds files of yours (the values file?)"
  fi
}
