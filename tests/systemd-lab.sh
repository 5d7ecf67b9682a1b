#!/usr/bin/env bash
# The systemd lab: hakit installed as an operator installs it, proven under a real systemd.
#
# Two Debian 12 containers boot with systemd 252 as PID 1 (systemd-nspawn -b), Debian's own
# keepalived, nftables, conntrackd and node_exporter units, and hakit's .deb. Each node is
# then set up by running the fenced sh blocks of examples/bare-metal/README.md ("Install",
# then "Verify") inside it, literally: a README step that does not work fails this test.
# The test writes nothing into the containers but the .deb and each machine's own network
# settings (systemd-networkd files: what a provider's image or an installer configures).
#
#   client 198.51.100.50 ── lan bridge ──┬── eth1 gw-a 198.51.100.2 ─ eth0 203.0.113.2 ──┬── up bridge 203.0.113.1
#   (default via the VIP 198.51.100.1)    ├── eth1 gw-b 198.51.100.3 ─ eth0 203.0.113.3 ──┘   server 192.0.2.80
#                         sync bridge ────┴── eth2 192.0.2.1/30 (a), 192.0.2.2/30 (b): conntrackd
#
# Scenarios, under a LAN client sending 1 ms UDP echoes and one byte-checked TCP stream
# through the NAT: boot and converge; soft failover (systemctl stop keepalived); return;
# systemctl restart keepalived; reboot the MASTER; reboot the BACKUP, then fail over to it;
# drain across a reboot; the README's upgrade to a newer package, node by node (status names
# a FIFO reader left on the replaced binary); dpkg -r and -P on the BACKUP, then the README's
# install again; at the end, hakit purged from both and the pair deployed again by the Ansible
# role (ansible/site.yml: converge, validate with a graceful and a crash failover), a second
# run changing nothing, drift corrected, and a planted split brain failing validate.yml;
# then the active-active profile installed by examples/active-active/README.md on the same
# nodes (both forwarding, a client per LAN half, VI_2 moved gracefully and by a crash);
# last, the Hetzner and DigitalOcean examples, each installed by its README behind a model of
# its provider's network with a fake provider API (tests/systemd-lab-clouds.sh; alone:
# HAKIT_SYSLAB_ONLY=clouds);
# nat-notify status right on both nodes after each step; node_exporter serves hakit's metrics;
# journalctl -t nat-notify has the transitions; status exits 1 on a MASTER with forwarding
# off and without its notify FIFO reader; the peer-watch unit as shipped refuses to
# start without a peer and does not take over from a healthy primary.
#
# Usage: systemd-lab.sh DEB BIN_DIR   (BIN_DIR: the static build, for the traffic tool)
# Root only. Under CI=true a missing prerequisite is a failure, otherwise a loud skip.
# Everything it starts is stopped and removed on exit, also after a failure or Ctrl-C.
set -euo pipefail

[ $# -eq 2 ] || { sed -n '2,/^set /{/^#/p}' "$0" >&2; exit 2; }
deb=$(readlink -f "$1") bin_dir=$(readlink -f "$2")
top=$(cd "$(dirname "$0")/.." && pwd)
readme=$top/examples/bare-metal/README.md
t_start=$(date +%s)

skip() {
  if [ "${CI:-}" = true ]; then echo "systemd-lab: FAILED (cannot run under CI): $*" >&2; exit 1; fi
  echo "systemd-lab: SKIPPED: $*" >&2; exit 0
}
[ "$(id -u)" -eq 0 ] || skip "needs root"
for p in systemd-nspawn debootstrap ip nsenter ansible-playbook; do
  command -v "$p" >/dev/null || skip "$p missing (scripts/deps.sh installs it)"
done
[ -f "$deb" ] || { echo "systemd-lab: no package $1 (make deb)" >&2; exit 1; }
[ -x "$bin_dir/hakit-lab-traffic" ] || { echo "systemd-lab: no $bin_dir/hakit-lab-traffic" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# The base image: debootstrap once, cached under target/ between local runs.
cache=$top/target/systemd-lab
# python3 and python3-apt: what Ansible's modules need on a managed node (the role's test);
# netbase: /etc/protocols, without which conntrackd synchronises nothing (minbase has none).
pkgs=netbase,gobgpd,systemd,systemd-sysv,dbus,iproute2,procps,kmod,keepalived,nftables,conntrackd,conntrack,prometheus-node-exporter,openssh-server,python3,python3-apt
base=$cache/base-$(printf '%s' "$pkgs" | md5sum | cut -c1-8)
if [ ! -f "$base/.hakit-ready" ]; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "systemd-lab: building the base image (debootstrap bookworm from $mirror)"
  rm -rf "$base"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$base" "$mirror" > "$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log" >&2; echo "systemd-lab: debootstrap failed" >&2; exit 1; }
  # The machine's own network settings come from systemd-networkd.
  chroot "$base" systemctl enable systemd-networkd.service >/dev/null 2>&1
  rm -f "$base/etc/hostname" "$base/etc/machine-id"
  touch "$base/.hakit-ready"
fi

# ---------------------------------------------------------------------------------------
# Names: one prefix for every namespace, bridge, veth and cgroup of this run.
P=hksd$(( $$ % 10000 ))
run=$cache/run-$P
lan=$P-lan up=$P-up
pids=()

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  for n in a b; do touch "$run/$n.halt" 2>/dev/null; done
  for n in a b; do
    local p
    p=$(cat "$run/$n.nspawn" 2>/dev/null)
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
  done
  for _ in $(seq 50); do pgrep -f "systemd-nspawn .*-M $P-" >/dev/null || break; sleep 0.2; done
  pkill -KILL -f "systemd-nspawn .*-M $P-" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "$lan" "$up" "$P-lan2" "$P-hnet" "$P-hc" "$P-pgw" "$P-agw" "$P-inet" "$P-vpc"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  for n in a b; do
    mountpoint -q "$run/$n/root" && umount -l "$run/$n/root"
    for c in systemd unified; do
      [ -d "/sys/fs/cgroup/$c/$P-$n" ] && find "/sys/fs/cgroup/$c/$P-$n" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  done
  for i in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$P" ); do
    ip link del "$i" 2>/dev/null
  done
  rm -rf "$run"
  [ $rc -eq 0 ] || echo "systemd-lab: FAILED (exit $rc) after $(( $(date +%s) - t_start )) s" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "systemd-lab: FAIL: $*" >&2
  # What the phase running shows about a failure (its $on_fail function), once.
  if [ -n "${on_fail:-}" ]; then local f=$on_fail; on_fail=; "$f" || true; fi
  # HAKIT_SYSLAB_PAUSE=SECONDS keeps the lab up after a failure, to look inside
  # (nsenter -t "$(pgrep -P "$(cat target/systemd-lab/run-*/a.nspawn)" -x systemd)" -a bash).
  [ -z "${HAKIT_SYSLAB_PAUSE:-}" ] || sleep "$HAKIT_SYSLAB_PAUSE"
  exit 1
}
ok() { echo "systemd-lab: ok: $*"; }
mkdir -p "$run"

# The networks the containers plug into.
ip netns add "$lan"
ip netns add "$up"
for ns in "$lan" "$up"; do ip -n "$ns" link set lo up; done
ip -n "$lan" link add br0 type bridge
ip -n "$lan" link add brs type bridge
# Fixed MACs: a bridge without one takes the lowest MAC of its ports, so a container's
# fresh veth after a reboot would change the client's and the upstream's MAC under traffic
# (a lab artifact, not a failover).
ip -n "$lan" link set br0 address 02:68:6b:00:00:01
ip -n "$lan" link set brs address 02:68:6b:00:00:02
ip -n "$lan" link set br0 up
ip -n "$lan" link set brs up
ip -n "$lan" addr add 198.51.100.50/24 dev br0
ip -n "$lan" route add default via 198.51.100.1
ip -n "$up" link add br0 type bridge
ip -n "$up" link set br0 address 02:68:6b:00:00:03
ip -n "$up" link set br0 up
ip -n "$up" addr add 203.0.113.1/24 dev br0
ip -n "$up" addr add 192.0.2.80/32 dev lo
for ns in "$lan" "$up"; do ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1; done

# Moves each container's host-side veths into those networks, at every boot (a reboot
# makes nspawn create them afresh, as a real machine's links come back).
wire() {
  while :; do
    for n in a b; do
      for i in 0 1 2; do
        local dev=$P$n$i
        ip link show "$dev" >/dev/null 2>&1 || continue
        case $i in 0) ns=$up br=br0 ;; 1) ns=$lan br=br0 ;; 2) ns=$lan br=brs ;; esac
        ip link set "$dev" netns "$ns" 2>/dev/null || continue
        ip -n "$ns" link set "$dev" master "$br"
        ip -n "$ns" link set "$dev" up
      done
    done
    sleep 0.05
  done
}
wire &
pids+=($!)

# One container per node: its own root (an overlay on the base image), cgroup and networks.
boot_loop() { # node, host number
  local n=$1 h=$2 root=$run/$1/root
  for c in systemd unified; do
    mkdir -p "/sys/fs/cgroup/$c/$P-$n"
    echo "$BASHPID" > "/sys/fs/cgroup/$c/$P-$n/cgroup.procs"
  done
  while [ ! -e "$run/$n.halt" ]; do
    systemd-nspawn -q -b -D "$root" -M "$P-$n" --register=no --keep-unit \
      --network-veth-extra="$P${n}0:eth0" --network-veth-extra="$P${n}1:eth1" \
      --network-veth-extra="$P${n}2:eth2" > "$run/$n.console" 2>&1 < /dev/null &
    echo $! > "$run/$n.nspawn"
    local rc=0
    wait $! || rc=$?
    [ $rc -eq 133 ] || break   # 133: the container asked for a reboot
    echo "$(date +%s.%N) rebooted" >> "$run/$n.boots"
  done
}
for n in a b; do
  h=$([ $n = a ] && echo 2 || echo 3)
  mkdir -p "$run/$n/upper" "$run/$n/work" "$run/$n/root"
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/$n/upper,workdir=$run/$n/work" "$run/$n/root"
  r=$run/$n/root
  echo "gw-$n" > "$r/etc/hostname"
  mkdir -p "$r/etc/systemd/network"
  cat > "$r/etc/systemd/network/10-wan.network" <<EOF
[Match]
Name=eth0
[Network]
Address=203.0.113.$h/24
Gateway=203.0.113.1
LinkLocalAddressing=no
[Link]
RequiredForOnline=routable
EOF
  cat > "$r/etc/systemd/network/20-lan.network" <<EOF
[Match]
Name=eth1
[Network]
Address=198.51.100.$h/24
LinkLocalAddressing=no
ConfigureWithoutCarrier=yes
KeepConfiguration=static
[Link]
RequiredForOnline=no
EOF
  cat > "$r/etc/systemd/network/30-sync.network" <<EOF
[Match]
Name=eth2
[Network]
Address=192.0.2.$((h - 1))/30
LinkLocalAddressing=no
ConfigureWithoutCarrier=yes
[Link]
RequiredForOnline=no
EOF
  cp "$deb" "$r/root/"
  boot_loop "$n" "$h" &
  pids+=($!)
done

# Inside a node: its systemd's PID, a command in all its namespaces, a root shell.
leader() { local p; p=$(cat "$run/$1.nspawn" 2>/dev/null) && pgrep -P "$p" -x systemd | head -n1; }
inside() { # node, argv... (a login-like environment, no variables of ours)
  local n=$1 l; shift
  l=$(leader "$n") || return 1
  [ -n "$l" ] || return 1
  nsenter -t "$l" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}
sh_in() { local n=$1; shift; inside "$n" /bin/bash -c "cd /root && $*"; }
# PATTERN, command...: the command's whole output matches. Not `cmd | grep -q`: under
# pipefail grep's early exit can SIGPIPE the command and turn a match into a failure.
matches() { local pat=$1 out; shift; out=$("$@" 2>&1) || true; grep -q -- "$pat" <<<"$out"; }
wait_for() { # seconds, description, command...
  local secs=$1 what=$2 end; shift 2
  end=$(( $(date +%s%N) + secs * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$end" ] || fail "$what: not within ${secs} s"
    sleep 0.1
  done
}
booted() { local s; s=$(inside "$1" systemctl is-system-running 2>/dev/null) || true; [ "$s" = running ] || [ "$s" = degraded ]; }
has_fip() { matches ' 203\.0\.113\.10/' inside "$1" ip -o addr show dev eth0; }
status_ok() { inside "$1" nat-notify status >/dev/null 2>&1; }
master_is() { # node: it holds the floating IP and the other does not, and both statuses are clean
  local o; o=$([ "$1" = a ] && echo b || echo a)
  has_fip "$1" && ! has_fip "$o" && status_ok "$1" && status_ok "$o"
}
boots() { if [ -f "$run/$1.boots" ]; then wc -l < "$run/$1.boots"; else echo 0; fi; }
rebooted() { [ "$(boots "$1")" -gt "$2" ]; }
show_status() { for n in a b; do echo "--- gw-$n: nat-notify status"; inside "$n" nat-notify status || true; done; }

phase() { echo "$(date +%s.%N) $*" >> "$run/phases"; echo "systemd-lab: -- $*"; }
# The traffic report (hakit-lab-traffic's JSON) judged by phase: no UDP blackout over 50 ms,
# the TCP stream byte-exact and alive at the end.
traffic_ok() { # report.json phases [blackout limit, ms: 50 unless a provider's API is on the path]
  python3 - "$1" "$2" "${3:-50}" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
limit = float(sys.argv[3])
phases = [l.split(' ', 1) for l in open(sys.argv[2]).read().splitlines()]
def during(t):
    name = 'before the first failover'
    for at, what in phases:
        if float(at) <= t:
            name = what
    return name
bad = []
for key, flow in r.items():
    if not isinstance(flow, dict):
        continue
    if 'blackout_ms' in flow:
        lost_ms = flow['longest_loss_run'] * flow['interval_ms']
        print(f"udp {flow['interval_ms']:.0f} ms: {flow['sent']} sent, {flow['lost']} lost, "
              f"longest loss run {lost_ms:.0f} ms ({during(flow['longest_loss_run_from'])}), "
              f"longest silence {flow['blackout_ms']:.1f} ms ({during(flow['blackout_after'])})")
        # A blackout loses the probes sent during it; a silence with nothing lost is the
        # answers coming late (this 2-core host under a 1 MB/s stream, two containers and
        # dpkg), which a generous bound still catches when it grows.
        if lost_ms > limit:
            bad.append(f"UDP blackout of {lost_ms:.0f} ms (probes lost in a row) during: {during(flow['longest_loss_run_from'])}")
        if flow['blackout_ms'] > max(250, limit):
            bad.append(f"UDP silence of {flow['blackout_ms']:.1f} ms during: {during(flow['blackout_after'])}")
    if key == 'tcp' and 'bytes' not in flow:
        print(f"tcp: never flowed: {flow.get('error')}")
        bad.append(f"TCP stream never flowed: {flow.get('error')}")
    if 'bytes' in flow:
        print(f"tcp: {flow['bytes']} bytes, mismatch at {flow['first_mismatch_offset']}, "
              f"alive at end {flow['alive_at_end']}, longest stall {flow['longest_stall_ms']:.1f} ms "
              f"({during(flow['longest_stall_at'])})")
        if flow['first_mismatch_offset'] is not None or not flow['alive_at_end']:
            bad.append(f"TCP stream broken: {flow.get('error')} at offset {flow['first_mismatch_offset']}")
        # A stream that stalls for a second (or stops for good: the stall runs to the end)
        # did not survive in any sense a user would accept.
        if flow['longest_stall_ms'] > 1000:
            bad.append(f"TCP stream stalled {flow['longest_stall_ms']:.0f} ms during: {during(flow['longest_stall_at'])}")
for b in bad:
    print('FAIL:', b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

for n in a b; do wait_for 120 "gw-$n boots with systemd as PID 1" booted "$n"; done
ok "both containers booted ($(inside a systemctl --version | head -n1))"

# ---------------------------------------------------------------------------------------
# The README's steps, literally: every fenced sh block of a section, in order.
blocks() { # section title [README] -> the blocks' text, one block per NUL-terminated record
  awk -v want="## $1" '
    /^## / { insec = ($0 == want) }
    insec && /^```sh$/ { inb = 1; buf = ""; next }
    inb && /^```$/ { inb = 0; printf "%s%c", buf, 0; next }
    inb { buf = buf $0 "\n" }
  ' "${2:-$readme}"
}
run_section() { # section, node [README]
  local b i=0
  while IFS= read -r -d '' b; do
    i=$((i + 1))
    echo "systemd-lab: gw-$2: README \"$1\" block $i"
    sh_in "$2" "set -e -x; $b" > "$run/$2.readme.$i.log" 2>&1 \
      || { cat "$run/$2.readme.$i.log" >&2; fail "gw-$2: README \"$1\" block $i failed"; }
    # A step that is the user's own (editing pair.values for this network): the cloud phases'.
    [ -z "${after_block:-}" ] || "$after_block" "$2" "$b"
  done < <(blocks "$1" "${3:-$readme}")
  [ $i -gt 0 ] || fail "README has no sh blocks under \"## $1\""
}
# HAKIT_SYSLAB_ONLY=clouds: only the cloud examples' phases (they set the nodes up themselves).
if [ "${HAKIT_SYSLAB_ONLY:-}" = clouds ]; then
  # shellcheck source=tests/systemd-lab-clouds.sh
  source "$top/tests/systemd-lab-clouds.sh"
  echo "systemd-lab: the cloud phases passed in $(( $(date +%s) - t_start )) s"
  exit 0
fi
for n in a b; do run_section Install "$n"; done
ok "README install steps ran on both nodes"
wait_for 20 "gw-a becomes MASTER with the floating IP, both statuses clean" master_is a \
  || { show_status; exit 1; }
for n in a b; do run_section Verify "$n"; done
ok "converged: gw-a MASTER, gw-b BACKUP, README verify steps exit 0 on both"

# Every shipped example passes every checker hakit-setup runs (keepalived -t, nft -c,
# nat-notify --dry-run) on a host shaped like it: gw-a has eth0 203.0.113.2 (the AWS and
# DigitalOcean examples' A_WAN_IP), eth1 198.51.100.2, eth2 192.0.2.1 and the installed
# binaries. And one is refused where it is not: a NIC gw-a does not have.
for ex in bare-metal aws digitalocean hetzner linode; do
  out=$(inside a bash -c "hakit-setup --node a --dry-run /usr/share/hakit/examples/$ex/pair.values 2>&1; echo \"exit \$?\"") || true
  grep -q '^exit 0$' <<<"$out" || fail "gw-a: the $ex example is refused by its checkers: $out"
done
out=$(inside a bash -c "sed 's/^SYNC_IF=.*/SYNC_IF=ens9/' /usr/share/hakit/examples/aws/pair.values > /tmp/ens9.values; hakit-setup --node a --dry-run /tmp/ens9.values 2>&1; echo \"exit \$?\"") || true
{ grep -q 'SYNC_IF=ens9: no such interface on this machine' <<<"$out" && grep -q '^exit 2$' <<<"$out"; } \
  || fail "gw-a: an example naming a NIC the host lacks was not refused: $out"
ok "every example passes its checkers on a host shaped like it; a missing NIC is refused"

# What the package and the setup command put in place, as the nodes see it.
for n in a b; do
  [ "$(inside "$n" stat -c %a /run/hakit)" = 755 ] || fail "gw-$n: /run/hakit is not 0755 (keepalived's umask)"
  [ "$(inside "$n" sysctl -n net.ipv4.ip_forward)" = 1 ] || fail "gw-$n: forwarding is off after the README steps"
  [ "$(inside "$n" sysctl -n net.ipv6.conf.eth0.accept_ra)" = 2 ] || fail "gw-$n: accept_ra is not 2 on the WAN"
  inside "$n" systemctl is-failed --quiet systemd-sysctl.service && fail "gw-$n: systemd-sysctl.service failed on the shipped file"
  inside "$n" test -f /usr/lib/modules-load.d/hakit.conf || fail "gw-$n: no modules-load.d entry"
  for m in hakit_nat_notify hakit_ha_check; do
    [ "$(inside "$n" stat -c %a "/var/lib/prometheus/node-exporter/$m.prom")" = 644 ] \
      || fail "gw-$n: $m.prom is not 0644 (node_exporter runs as prometheus)"
  done
  # A closed pipe is a normal end of output, on the installed binaries too.
  # shellcheck disable=SC2016 # expanded inside the container, not here
  out=$(inside "$n" bash -c 'nat-notify status | true; echo "exit ${PIPESTATUS[0]}"' 2>&1) || true
  [ "$out" = "exit 0" ] || fail "gw-$n: nat-notify status | true: $out"
done
matches snat inside b nft list table ip hakit && fail "the BACKUP gw-b has a SNAT rule (nat-notify owns SNAT)"
matches 'counter name "unnatted_drop" drop' inside a nft list ruleset || fail "no fail-closed rule on gw-a"
ok "runtime directories, sysctls, metrics modes, SNAT ownership and the fail-closed rule as installed"

# The notify FIFO's directory exists because the package made it (tmpfiles.d), and the
# reader is alive under keepalived.
inside a test -p /run/keepalived/vrrp_notify.fifo || fail "no notify FIFO on gw-a"
inside a pgrep -f 'nat-notify .*fifo' >/dev/null || fail "no nat-notify FIFO reader on gw-a"
# conntrackd runs under its own unit (Type=notify, Systemd on), not in keepalived's cgroup.
for n in a b; do
  [ "$(inside "$n" systemctl is-active conntrackd.service)" = active ] || fail "gw-$n: conntrackd.service not active"
  # shellcheck disable=SC2016 # expanded inside the container, not here
  cg=$(inside "$n" sh -c 'cat /proc/$(pidof conntrackd)/cgroup' | tail -n1)
  case $cg in *conntrackd.service*) ;; *) fail "gw-$n: conntrackd is not in its unit's cgroup: $cg" ;; esac
done
ok "conntrackd runs as conntrackd.service on both nodes"
# The uplink monitor as the README starts it: its unit, its verdict in keepalived's track file
# (the directory made by the unit), and nat-notify status reading its heartbeat.
for n in a b; do
  [ "$(inside "$n" systemctl is-active hakit-monitor.service)" = active ] || fail "gw-$n: hakit-monitor.service not active"
  [ "$(inside "$n" cat /run/hakit-monitor/uplink)" = 0 ] || fail "gw-$n: the monitor's track file does not say healthy (0)"
  matches 'uplink monitor  *healthy' inside "$n" nat-notify status || fail "gw-$n: nat-notify status does not show a healthy uplink monitor"
done
ok "hakit-monitor.service runs on both nodes: track file 0, nat-notify status shows it healthy"
# Its track file on a tmpfs, as the unit makes it: the monitor's start said so by saying
# nothing (it warns when the directory is on a disk, whose stalls can demote the node). The
# line it logs next is there, so the journal did keep the start.
for n in a b; do
  [ "$(inside "$n" stat -f -c %T /run/hakit-monitor)" = tmpfs ] || fail "gw-$n: /run/hakit-monitor is not a tmpfs"
  started() { matches 'real-time scheduling: SCHED_RR priority 10' inside "$1" journalctl -u hakit-monitor.service --no-pager; }
  wait_for 30 "gw-$n: hakit-monitor's start in its journal" started "$n"
  if matches 'is not a tmpfs' inside "$n" journalctl -u hakit-monitor.service --no-pager; then
    fail "gw-$n: hakit-monitor warns that its track-file directory is not a tmpfs"
  fi
done
ok "the installed monitor's track file is on a tmpfs and it does not warn"
# Priorities as shipped, under systemd in a container: the monitor's 20 ms tick thread
# SCHED_RR (policy 2) at monitor_rt_priority's default 10; keepalived's processes SCHED_RR 20
# from hakit's keepalived.service drop-in (not vrrp_rt_priority, which breaks reloads), and
# nat-notify, which keepalived starts as its FIFO script, back to normal (policy 0)
# (proc(5): fields 19, 40 and 41 of each thread's stat).
sched_of() { # node, pid: "comm nice priority policy" per thread
  # shellcheck disable=SC2016 # expanded inside the container, not here
  inside "$1" sh -c 'for t in /proc/'"$2"'/task/*; do echo "$(cat $t/comm) $(sed "s/.*) //" $t/stat | cut -d" " -f17,38,39)"; done'
}
for n in a b; do
  pid=$(inside "$n" systemctl show -P MainPID hakit-monitor.service)
  th=$(sched_of "$n" "$pid")
  grep -qx 'tick-20ms 0 10 2' <<<"$th" || fail "gw-$n: the monitor's 20 ms tick thread is not SCHED_RR 10: $th"
  rr=0 all=0
  for k in $(inside "$n" pidof keepalived); do
    all=$((all + 1))
    grep -q ' 0 20 2$' <<<"$(sched_of "$n" "$k")" && rr=$((rr + 1))
  done
  { [ $all -ge 2 ] && [ $rr = $all ]; } || fail "gw-$n: $rr of $all keepalived processes run SCHED_RR 20 (the unit's drop-in)"
  for k in $(inside "$n" pidof nat-notify); do
    grep -q ' 0 0 0$' <<<"$(sched_of "$n" "$k" | head -n1)" \
      || fail "gw-$n: nat-notify (keepalived's FIFO script) kept keepalived's real time: $(sched_of "$n" "$k")"
  done
done
ok "priorities under systemd: the monitor's probes SCHED_RR 10, keepalived SCHED_RR 20 from its drop-in, nat-notify normal"
# Both long-running units sandboxed as shipped, as systemd itself rates them (the monitor
# just proved its probes, real time and files work inside the walls; the watch does below).
for u in hakit-monitor hakit-watch; do
  score=$(inside a systemd-analyze security --no-pager "$u.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  { [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 4.5) }'; } \
    || fail "$u.service: systemd-analyze security rates it ${score:-?} (want 4.5 or less)"
  echo "systemd-lab: $u.service exposure $score"
done
ok "hakit-monitor and hakit-watch are sandboxed: systemd-analyze security 4.5 or less"
# Metrics through node_exporter, as Prometheus would scrape them; files readable by it.
scrape() { nsenter -t "$(leader "$1")" -n curl -sf --max-time 5 http://127.0.0.1:9100/metrics; }
serves_check() { matches '^hakit_ha_check_healthy' scrape a; }
wait_for 15 "gw-a's node_exporter serves ha-check's metrics" serves_check
metrics=$(scrape a) || fail "node_exporter on gw-a does not answer"
# Every series names the pair (hakit-setup renders [general] pair from the values file).
grep -q '^hakit_nat_notify_state{pair="gw-a-gw-b",.*state="MASTER".*} 1' <<<"$metrics" || fail "node_exporter does not serve hakit_nat_notify_state with the pair label"
grep -q '^hakit_ha_check_healthy{pair="gw-a-gw-b"} 1' <<<"$metrics" || fail "node_exporter does not serve hakit_ha_check_healthy 1 with the pair label"
grep -q '^hakit_ha_check_failures_total{pair="gw-a-gw-b"} ' <<<"$metrics" || fail "node_exporter does not serve ha-check's failure counter"
if grep -q '^node_textfile_scrape_error 1' <<<"$metrics"; then
  fail "node_exporter reports a textfile scrape error: $(inside a journalctl -u prometheus-node-exporter --no-pager | grep -i textfile | tail -n 3)"
fi
ok "node_exporter serves hakit_nat_notify_state and hakit_ha_check_healthy"
matches 'converged to MASTER' inside a journalctl -t nat-notify --no-pager || fail "journalctl -t nat-notify has no transition line"
ok "journalctl -t nat-notify has the transitions"
# Reloading the firewall on the MASTER keeps nat-notify's SNAT rule (the shipped ruleset
# never flushes the whole ruleset).
inside a systemctl reload nftables.service
matches 'snat to 203.0.113.10' inside a nft list table ip hakit || fail "systemctl reload nftables removed the MASTER's SNAT rule"
status_ok a || { show_status; fail "status not clean after reloading the firewall"; }
ok "systemctl reload nftables keeps the MASTER's SNAT rule"

# ---------------------------------------------------------------------------------------
# Traffic through the NAT for every failover below.
ip netns exec "$up" "$bin_dir/hakit-lab-traffic" server 192.0.2.80 > "$run/server.log" 2>&1 &
pids+=($!)
wait_for 10 "the traffic server listens" grep -q '^serving on' "$run/server.log"
ip netns exec "$lan" "$bin_dir/hakit-lab-traffic" client 192.0.2.80 --tcp --udp-ms 1 \
  --stop-file "$run/stop-traffic" --out "$run/traffic.json" > "$run/client.log" 2>&1 &
client=$!
pids+=("$client")
sleep 1
# conntrackd synchronises the stream to the BACKUP before anything fails over (the sync was
# silently dead in this lab until netbase was in the image: no /etc/protocols).
synced() { matches 'dport=5001 .*ESTABLISHED\|ESTABLISHED .*dport=5001' inside b conntrack -L -p tcp --dport 5001; }
wait_for 10 "gw-b's kernel holds the TCP stream's conntrack entry (conntrackd synchronised it)" synced

phase "soft failover: systemctl stop keepalived on gw-a"
inside a systemctl stop keepalived.service
wait_for 10 "gw-b takes over after gw-a's keepalived stops" master_is b || { show_status; exit 1; }
ok "soft failover: gw-b MASTER, gw-a drained, both statuses clean"
matches snat inside a nft list table ip hakit && fail "the drained gw-a still has a SNAT rule"

phase "return: systemctl start keepalived on gw-a"
inside a systemctl start keepalived.service
wait_for 25 "gw-a takes the role back after preempt_delay" master_is a || { show_status; exit 1; }
ok "gw-a returned as MASTER after preempt_delay"

phase "systemctl restart keepalived on the MASTER gw-a"
inside a systemctl restart keepalived.service
wait_for 10 "gw-b takes over during the restart" has_fip b
wait_for 25 "gw-a takes the role back after its restart" master_is a || { show_status; exit 1; }
ok "keepalived restart: over to gw-b and back"

phase "reboot the MASTER gw-a"
boots_a=$(boots a)
inside a systemctl reboot || true
wait_for 10 "gw-b takes over while gw-a reboots" has_fip b
wait_for 60 "gw-a comes back from its reboot" rebooted a "$boots_a"
wait_for 60 "gw-a boots again" booted a
wait_for 30 "gw-a, rebooted, takes the role back (its notify FIFO exists at boot)" master_is a || { show_status; exit 1; }
ok "MASTER reboot: gw-b took over, gw-a came back and took the role back"

phase "reboot the BACKUP gw-b, then fail over to it"
boots_b=$(boots b)
inside b systemctl reboot || true
wait_for 60 "gw-b comes back from its reboot" rebooted b "$boots_b"
wait_for 60 "gw-b boots again" booted b
wait_for 20 "gw-b is a clean BACKUP after its boot" master_is a || { show_status; exit 1; }
sleep 3   # conntrackd on gw-b resyncs from gw-a
inside a systemctl stop keepalived.service
wait_for 10 "gw-b takes over (its first event since boot)" master_is b || { show_status; exit 1; }
inside a systemctl start keepalived.service
wait_for 25 "gw-a takes the role back" master_is a || { show_status; exit 1; }
ok "BACKUP reboot, then failover to it and back"

phase "drain gw-a for maintenance, across a reboot"
# A drained node gives the role away once and never takes it back, whatever keepalived's
# preemption, until undrained: the flag is on disk (/var/lib/hakit/drain).
away_from_a() { has_fip b && ! has_fip a; }
drained_a() { inside a nat-notify status 2>&1 | grep -q 'DRAINED (kernel upgrade)'; }
inside a ha-check drain kernel upgrade >/dev/null || fail "gw-a: ha-check drain failed"
wait_for 10 "gw-b takes over from the drained gw-a" away_from_a || { show_status; exit 1; }
wait_for 5 "gw-a's status says it is drained, and why" drained_a || { show_status; exit 1; }
boots_a=$(boots a)
inside a systemctl reboot || true
wait_for 60 "gw-a comes back from its reboot" rebooted a "$boots_a"
wait_for 60 "gw-a boots again" booted a
sleep 15   # past preempt_delay (10 s): an undrained gw-a would have taken the role back
away_from_a || { show_status; fail "gw-a took the role back while drained (after its reboot)"; }
drained_a || { show_status; fail "gw-a's status lost the drain across the reboot"; }
inside a ha-check undrain >/dev/null || fail "gw-a: ha-check undrain failed"
wait_for 30 "gw-a takes the role back once undrained" master_is a || { show_status; exit 1; }
ok "drain: gw-b took over, gw-a stayed BACKUP across its reboot, and took the role back when undrained"

phase "upgrade both nodes by the README, the BACKUP gw-b first"
# The next release: this package with a higher version (the maintainer scripts are what an
# upgrade runs; the old package's prerm and the new one's postinst are both this tree's).
ver=$(dpkg-deb -f "$deb" Version)
rm -rf "$run/next"
dpkg-deb -R "$deb" "$run/next"
sed -i "s/^Version: .*/Version: $ver+next1/" "$run/next/DEBIAN/control"
dpkg-deb --root-owner-group -Zxz -b "$run/next" "$run/hakit_${ver}+next1_amd64.deb" >/dev/null
upgrade_from=$(date +%s)
masters_since() { inside "$1" journalctl -t nat-notify --no-pager -o cat --since "@$upgrade_from" | grep -c 'converged to MASTER' || true; }
for n in b a; do
  rm -f "$run/$n/root/root/"hakit_*_amd64.deb
  cp "$run/hakit_${ver}+next1_amd64.deb" "$run/$n/root/root/"
  if [ $n = b ]; then
    # Between the package and keepalived's restart, status says the reader is stale.
    stale() { matches 'runs a binary that has since been replaced' inside b nat-notify status; }
    sh_in b "ha-check drain 'upgrade check' >/dev/null && dpkg -i ./hakit_*_amd64.deb >/dev/null 2>&1"
    wait_for 5 "gw-b's status names the FIFO reader still on the replaced binary" stale
    sh_in b "systemctl restart keepalived.service && ha-check undrain >/dev/null"
    wait_for 30 "gw-b clean BACKUP again" master_is a || { show_status; exit 1; }
    stale && fail "gw-b's status still says the reader is stale after keepalived's restart"
  fi
  run_section Upgrade "$n"
  # shellcheck disable=SC2016 # a dpkg-query format, not an expansion
  [ "$(inside "$n" dpkg-query -W -f '${Version}' hakit)" = "$ver+next1" ] || fail "gw-$n: not upgraded"
done
wait_for 30 "gw-a MASTER again after the upgrade" master_is a || { show_status; exit 1; }
for n in a b; do
  m=$(masters_since "$n")
  [ "$m" -le 1 ] || fail "gw-$n became MASTER $m times during the upgrade (at most once)"
  # shellcheck disable=SC2016 # expanded inside the container, not here
  exes=$(inside "$n" sh -c 'for p in $(pidof nat-notify ha-check); do readlink /proc/$p/exe; done')
  grep -q deleted <<<"$exes" && fail "gw-$n: a hakit process still runs a replaced binary after the upgrade: $exes"
done
ok "both nodes upgraded by the README under traffic: gw-b took over $(masters_since b) time(s), gw-a $(masters_since a); no process on an old binary"

phase "remove and purge hakit on the BACKUP gw-b, then install it again by the README"
sh_in b "dpkg -r hakit > /root/remove.log 2>&1" || fail "gw-b: dpkg -r: $(inside b cat /root/remove.log)"
for u in hakit-monitor hakit-watch keepalived; do
  [ "$(inside b systemctl is-active "$u.service")" = active ] && fail "gw-b: $u.service still runs after dpkg -r"
  [ "$(inside b systemctl is-enabled "$u.service" 2>/dev/null)" = enabled ] && fail "gw-b: $u.service still enabled after dpkg -r"
done
for p in nat-notify ha-check keepalived; do
  inside b pgrep -x "$p" >/dev/null && fail "gw-b: $p runs after dpkg -r: $(inside b pgrep -a -x "$p")"
done
matches 'this node leaves the pair now' inside b cat /root/remove.log || fail "gw-b: dpkg -r did not say keepalived stops"
inside b test -e /var/lib/prometheus/node-exporter/hakit_nat_notify.prom && fail "gw-b: dpkg -r left hakit's metrics"
status_ok a || { show_status; fail "gw-a disturbed by the BACKUP's removal"; }
sh_in b "dpkg -P hakit > /root/purge.log 2>&1" || fail "gw-b: dpkg -P: $(inside b cat /root/purge.log)"
for f in /etc/hakit/hakit.toml /etc/keepalived/keepalived.conf /etc/sysctl.d/90-hakit.conf; do
  inside b test -e "$f" && fail "gw-b: $f left after dpkg -P"
done
matches 'Rendered by: hakit-setup' inside b head -n 2 /etc/nftables.conf && fail "gw-b: dpkg -P did not put back Debian's /etc/nftables.conf"
inside b test -f /etc/hakit/pair.values || fail "gw-b: dpkg -P removed the operator's values file"
[ -z "$(inside b systemctl list-unit-files --no-legend 'hakit*')" ] || fail "gw-b: hakit units known after dpkg -P"
ok "dpkg -r on the BACKUP: nothing running or enabled, the MASTER undisturbed; dpkg -P: rendered files gone, Debian's ruleset back, the values file kept"
run_section Install b
wait_for 30 "gw-b, installed again, a clean BACKUP" master_is a || { show_status; exit 1; }
ok "gw-b installed again by the README's steps after the purge"

phase "traffic stops"
touch "$run/stop-traffic"
wait "$client" || fail "the traffic client failed: $(cat "$run/client.log")"
traffic_ok "$run/traffic.json" "$run/phases" || fail "traffic through the NAT was interrupted (above)"
# The server beyond the upstream saw the LAN client from the floating IP, and from nothing else.
grep -qx 'tcp from 203.0.113.10' "$run/server.log" || fail "the server never saw the floating IP: $(cat "$run/server.log")"
if grep -v '^serving \|from 203\.0\.113\.10$' "$run/server.log"; then fail "the server saw a source other than the floating IP (above)"; fi
ok "no UDP blackout over 50 ms and the TCP stream byte-exact and flowing across every failover; the server saw only the floating IP"

# ---------------------------------------------------------------------------------------
# nat-notify status must say when something is wrong.
expect_problem() { # node, text, description
  local out rc=0
  out=$(inside "$1" nat-notify status 2>&1) || rc=$?
  [ $rc -eq 1 ] || { echo "$out" >&2; fail "$3: nat-notify status exits $rc, want 1"; }
  grep -q "PROBLEM: .*$2" <<<"$out" || { echo "$out" >&2; fail "$3: status does not say \"$2\""; }
}
inside a sysctl -q -w net.ipv4.ip_forward=0
expect_problem a "net.ipv4.ip_forward = 0" "MASTER with forwarding off"
inside a sysctl -q -w net.ipv4.ip_forward=1
status_ok a || fail "status not clean again once forwarding is back"
ok "status exits 1 on a MASTER that does not forward"
inside a pkill -KILL -f 'nat-notify .*fifo'
no_reader() { ! inside a pgrep -f 'nat-notify .*fifo'; }
wait_for 5 "the FIFO reader is gone" no_reader
expect_problem a "no nat-notify FIFO reader is alive" "keepalived without its FIFO reader"
inside a systemctl restart keepalived.service
wait_for 25 "gw-a MASTER again after a keepalived restart" master_is a || { show_status; exit 1; }
ok "status exits 1 while keepalived runs without a notify FIFO reader"
# Without /etc/protocols conntrackd runs, answers and synchronises nothing: status says so,
# and hakit-setup refuses to render for such a node.
inside b mv /etc/protocols /etc/protocols.hakit-test
expect_problem b "conntrackd's filter names protocols /etc/protocols lacks (TCP, UDP, ICMP)" "a node without /etc/protocols"
out=$(inside b bash -c 'hakit-setup --dry-run /etc/hakit/pair.values 2>&1; echo "exit $?"') || true
inside b mv /etc/protocols.hakit-test /etc/protocols
{ grep -q 'cannot resolve (TCP UDP ICMP; /etc/protocols: install netbase)' <<<"$out" && grep -q '^exit 1$' <<<"$out"; } \
  || fail "gw-b: hakit-setup accepted a node without /etc/protocols: $out"
status_ok b || { show_status; fail "gw-b's status not clean again with /etc/protocols back"; }
ok "a node without /etc/protocols: status names it, hakit-setup refuses it"

# ---------------------------------------------------------------------------------------
# conntrackd down on the BACKUP: a STOP never starts it (keepalived, often the node, is going
# down); the next BACKUP starts it through systemd, never as an orphan in keepalived's cgroup.
inside b systemctl stop conntrackd.service
inside b systemctl stop keepalived.service
sleep 1
[ "$(inside b systemctl is-active conntrackd.service)" != active ] || fail "gw-b: STOP started conntrackd.service"
if inside b pgrep -x conntrackd >/dev/null; then fail "gw-b: a conntrackd runs after STOP: $(inside b ps -o pid,cgroup -C conntrackd)"; fi
inside b systemctl start keepalived.service
ctd_active() { [ "$(inside b systemctl is-active conntrackd.service)" = active ]; }
wait_for 15 "gw-b's BACKUP transition starts conntrackd.service" ctd_active
# shellcheck disable=SC2016 # expanded inside the container, not here
cg=$(inside b sh -c 'cat /proc/$(pidof conntrackd)/cgroup' | tail -n1)
case $cg in *conntrackd.service*) ;; *) fail "gw-b: conntrackd was started outside its unit: $cg" ;; esac
matches 'starting conntrackd.service through systemd' inside b journalctl -t nat-notify --no-pager \
  || fail "gw-b: nat-notify did not say it started conntrackd"
wait_for 10 "gw-b clean BACKUP again" master_is a || { show_status; exit 1; }
ok "STOP leaves a stopped conntrackd alone; BACKUP starts it through systemd"

# ---------------------------------------------------------------------------------------
# The peer-watch unit, as shipped, on gw-b watching gw-a.
# The package ships the unit (not enabled): nothing to copy.
sh_in b "systemctl cat hakit-watch.service >/dev/null"
inside b systemctl start hakit-watch.service || true
watch_failed() { [ "$(inside b systemctl is-active hakit-watch.service)" = failed ]; }
wait_for 10 "hakit-watch without a peer stops" watch_failed
# journald may store the unit's last line a while after systemd marks it failed (one CI run
# did not see it within 5 s; the bound is generous, what is asserted is that it is said, and
# where: under the unit, where an operator looks first).
# A process that exits within a millisecond of logging can be gone before journald reads its
# cgroup, and its lines then carry no _SYSTEMD_UNIT (journalctl -u misses them; seen in CI
# with systemd 252). The unit's own main PID, which systemd records, attributes them then.
says_why() {
  matches 'no peer to watch' inside b journalctl -u hakit-watch.service --no-pager && return 0
  local pid
  pid=$(inside b systemctl show -P ExecMainPID hakit-watch.service)
  [ -n "$pid" ] && [ "$pid" != 0 ] && matches 'no peer to watch' inside b journalctl "_PID=$pid" --no-pager
}
if ! (wait_for 30 "hakit-watch without a peer says why" says_why); then
  echo "systemd-lab: journalctl -u hakit-watch.service:" >&2
  inside b journalctl -u hakit-watch.service --no-pager -o short-precise 2>&1 | tail -n 20 >&2 || true
  echo "systemd-lab: journalctl -t ha-check:" >&2
  inside b journalctl -t ha-check --no-pager -o short-precise 2>&1 | tail -n 20 >&2 || true
  inside b systemctl status --no-pager hakit-watch.service 2>&1 | tail -n 20 >&2 || true
  fail "hakit-watch without a peer does not say why under its unit"
fi
ok "hakit-watch refuses to start without a configured peer"
sh_in b "mkdir -p /etc/systemd/system/hakit-watch.service.d && printf '[Service]\nEnvironment=HAKIT_WATCH_PEER=198.51.100.2\n' > /etc/systemd/system/hakit-watch.service.d/peer.conf && systemctl daemon-reload && systemctl reset-failed hakit-watch.service && systemctl start hakit-watch.service"
sleep 6
inside b journalctl -u hakit-watch.service --no-pager > "$run/watch.log"
grep -q 'watching 198.51.100.2 by ssh' "$run/watch.log" || fail "hakit-watch is not watching gw-a: $(tail -n 5 "$run/watch.log")"
grep -q 'taking over' "$run/watch.log" && fail "hakit-watch took over from a healthy primary: $(grep -m3 'probe failed\|taking over' "$run/watch.log")"
ok "hakit-watch with the peer configured leaves a healthy primary alone (SSH probe let through)"
# The same check bites: with gw-a's sshd gone the watch does take over.
inside a systemctl stop ssh.service ssh.socket 2>/dev/null || true
took_over() { matches 'taking over' inside b journalctl -u hakit-watch.service --no-pager; }
wait_for 15 "hakit-watch notices a dead primary" took_over
inside b systemctl stop hakit-watch.service
ok "hakit-watch takes over once gw-a stops answering (negative control)"

# ---------------------------------------------------------------------------------------
# The Ansible role and its validation play (ansible/), on the same two nodes, from scratch:
# hakit purged from both, then site.yml (the role, then validate.yml with a graceful and a
# crash failover); a second run changes nothing; drift (the MASTER's SNAT rule flushed, a
# rendered file edited) is put back and said; a planted split brain fails the validation.
# Ansible reaches the containers through nsenter (tests/ansible/connection_plugins).
for n in b a; do
  sh_in "$n" "dpkg -P hakit > /root/purge.log 2>&1" || fail "gw-$n: dpkg -P before the Ansible run: $(inside "$n" cat /root/purge.log)"
done
inventory() {
  echo "hakit:"
  echo "  hosts:"
  for n in a b; do echo "    gw-$n: { hakit_nsenter_pid: $(leader "$n"), hakit_node: $n }"; done
  echo "  vars:"
  echo "    hakit_package: $deb"
  echo "    hakit_values:"
  grep -E '^[A-Z][A-Z0-9_]*=' "$top/examples/bare-metal/pair.values" | sed 's/^\([^=]*\)=\(.*\)$/      \1: "\2"/'
}
inventory > "$run/inventory.yml"
play() { # log name, playbook, extra args...
  local log=$run/ansible-$1.log book=$2; shift 2
  ANSIBLE_CONNECTION_PLUGINS=$top/tests/ansible/connection_plugins ANSIBLE_ROLES_PATH=$top/ansible/roles \
    ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
    ANSIBLE_LOCAL_TEMP="$run/ansible-tmp" \
    ansible-playbook -i "$run/inventory.yml" -c hakit_nsenter "$top/ansible/$book" "$@" > "$log" 2>&1
}
changed_of() { sed -n "s/^gw-$2 *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p" "$run/ansible-$1.log"; }
play converge site.yml || { tail -n 40 "$run/ansible-converge.log" >&2; fail "ansible: site.yml (role and validation) failed on the purged pair"; }
grep -q 'graceful failover: gw-b took over' "$run/ansible-converge.log" || fail "ansible: no graceful failover measured: $(grep -m3 'took over' "$run/ansible-converge.log")"
grep -q 'crash failover: gw-b took over' "$run/ansible-converge.log" || fail "ansible: no crash failover measured"
master_is a || { show_status; fail "ansible: gw-a is not the only MASTER after site.yml"; }
ok "ansible: the role converged the purged pair and validate.yml passed ($(grep -o '[a-z]* failover: gw-b took over [0-9.]* s' "$run/ansible-converge.log" | sort -u | tr '\n' ';'))"
play again site.yml -e hakit_failover=false || { tail -n 40 "$run/ansible-again.log" >&2; fail "ansible: the second run failed"; }
for n in a b; do
  [ "$(changed_of again "$n")" = 0 ] || { grep -B2 -A6 '^changed' "$run/ansible-again.log" >&2; fail "ansible: the second run changed $(changed_of again "$n") thing(s) on gw-$n"; }
done
ok "ansible: a second run changes nothing on either node"
inside a nft flush chain ip hakit postrouting
sh_in b "echo '# edited by hand' >> /etc/sysctl.d/90-hakit.conf"
play drift site.yml -e hakit_failover=false || { tail -n 40 "$run/ansible-drift.log" >&2; fail "ansible: the run after drift failed"; }
grep -q 'SNAT rule absent on the MASTER' "$run/ansible-drift.log" || fail "ansible: the run after drift did not say it put back the SNAT rule"
grep -q 'wrote /etc/sysctl.d/90-hakit.conf' "$run/ansible-drift.log" || fail "ansible: the run after drift did not say it rewrote the edited file"
matches 'snat to 203.0.113.10' inside a nft list table ip hakit || fail "ansible: gw-a's SNAT rule not put back"
matches 'edited by hand' inside b cat /etc/sysctl.d/90-hakit.conf && fail "ansible: gw-b's edited file not put back"
ok "ansible: drift corrected and said (the MASTER's SNAT rule, an edited rendered file)"
# A split brain: gw-b hears neither VRRP nor gw-a's monitor on the sync link, and becomes
# MASTER beside gw-a. (With only VRRP cut, the monitor sees the peer alive on the sync link
# and the newer MASTER stands down, crates/check/src/split.rs: a split hakit heals itself,
# which is not what this plants. A fresh-clone CI run caught both MASTERs in that short
# window only some of the time.)
inside b nft add table ip hksplit
inside b nft add chain ip hksplit in '{ type filter hook input priority -300; }'
inside b nft add rule ip hksplit in ip protocol 112 drop   # VRRP
inside b nft add rule ip hksplit in ip saddr 192.0.2.1 drop   # gw-a on the sync link
both() { has_fip a && has_fip b; }
wait_for 30 "the planted split brain: both nodes hold the floating IP" both
sleep 2
both || { show_status; fail "the planted split brain did not hold: both nodes held the floating IP, then not"; }
if play split validate.yml -e hakit_failover=false; then fail "ansible: validate.yml passed on a split brain"; fi
grep -q 'want exactly one' "$run/ansible-split.log" || fail "ansible: validate.yml failed on the split brain without saying why: $(tail -n 5 "$run/ansible-split.log")"
inside b nft delete table ip hksplit
wait_for 30 "the pair heals once VRRP is heard again" master_is a || { show_status; exit 1; }
ok "ansible: validate.yml fails on a planted split brain (both MASTER) and says so"
# validate.yml started while the other node holds the role (gw-a just started, within its
# preempt_delay, as right after the role ran on a pair whose gw-b came up first): it waits
# for the pair at rest, then fails over from the preferred node and back.
inside a systemctl stop keepalived.service
wait_for 10 "gw-b takes over from the stopped gw-a" master_is b || { show_status; exit 1; }
inside a systemctl start keepalived.service
play preempt validate.yml || { tail -n 40 "$run/ansible-preempt.log" >&2; fail "ansible: validate.yml failed when started while gw-b held the role"; }
grep -q 'graceful failover: gw-b took over' "$run/ansible-preempt.log" || fail "ansible: validate.yml did not fail over from the preferred gw-a: $(grep -m3 'took over' "$run/ansible-preempt.log")"
master_is a || { show_status; fail "ansible: gw-a is not the only MASTER after validate.yml"; }
ok "ansible: validate.yml waits out preempt_delay when the other node holds the role, then fails over from the preferred one"

# ---------------------------------------------------------------------------------------
# Active-active: the same two nodes set up again by examples/active-active/README.md, both
# forwarding at once (gw-a MASTER of VI_1 for the LAN's lower half, gw-b of VI_2 for the
# upper half), a client in each half; VI_2 moves to gw-a and back (graceful, then a crash of
# gw-b's keepalived) while both clients' TCP streams and 1 ms UDP flows go on, and the server
# sees each half from its own floating IP.
aa_readme=$top/examples/active-active/README.md
lan2=$P-lan2
ip netns add "$lan2"
ip -n "$lan2" link set lo up
ip netns exec "$lan2" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
ip -n "$lan" link add "${P}c2" type veth peer name eth0 netns "$lan2"
ip -n "$lan" link set "${P}c2" master br0 up
ip -n "$lan2" link set eth0 up
ip -n "$lan2" addr add 198.51.100.150/24 dev eth0
ip -n "$lan2" route add default via 198.51.100.129
has_fip2() { matches ' 203\.0\.113\.11/' inside "$1" ip -o addr show dev eth0; }
holds() { # node holding VI_1, node holding VI_2: each floating IP on its node alone, statuses clean
  local o1 o2
  o1=$([ "$1" = a ] && echo b || echo a) o2=$([ "$2" = a ] && echo b || echo a)
  has_fip "$1" && ! has_fip "$o1" && has_fip2 "$2" && ! has_fip2 "$o2" && status_ok a && status_ok b
}
for n in a b; do run_section Install "$n" "$aa_readme"; done
wait_for 30 "active-active: gw-a MASTER of VI_1, gw-b of VI_2, both statuses clean" holds a b || { show_status; exit 1; }
for n in a b; do run_section Verify "$n" "$aa_readme"; done
matches 'snat to 203.0.113.10' inside a nft list table ip hakit || fail "active-active: gw-a has no SNAT rule to FIP for VI_1"
matches 'snat to 203.0.113.11' inside b nft list table ip hakit || fail "active-active: gw-b has no SNAT rule to FIP2 for VI_2"
ok "active-active installed by its README: gw-a MASTER of VI_1, gw-b MASTER of VI_2, both forwarding"
: > "$run/phases"
# The server of the first phase serves these clients too; what it prints from here on.
seen_from=$(( $(wc -l < "$run/server.log") + 1 ))
aa_clients=()
for c in 1 2; do
  ns=$([ $c = 1 ] && echo "$lan" || echo "$lan2")
  rm -f "$run/stop-aa"
  ip netns exec "$ns" "$bin_dir/hakit-lab-traffic" client 192.0.2.80 --tcp --udp-ms 1 \
    --stop-file "$run/stop-aa" --out "$run/traffic-aa$c.json" > "$run/client-aa$c.log" 2>&1 &
  pids+=($!)
  aa_clients+=($!)
done
sleep 1
phase "active-active: systemctl stop keepalived on gw-b (VI_2 moves to gw-a)"
inside b systemctl stop keepalived.service
wait_for 10 "gw-a holds both instances" holds a a || { show_status; exit 1; }
ok "graceful: gw-a MASTER of both, both SNAT rules, statuses clean"
phase "active-active: systemctl start keepalived on gw-b (VI_2 back after preempt_delay)"
inside b systemctl start keepalived.service
wait_for 30 "gw-b takes VI_2 back" holds a b || { show_status; exit 1; }
sleep 2   # conntrackd settles before the next move
phase "active-active: gw-b's keepalived frozen and killed, a crash (VI_2 moves to gw-a)"
killed_at=$(date +%s)
# Frozen first, then killed: a crash, where no keepalived process cleans up. (SIGKILL alone
# races: the VRRP child may see its parent die first and remove its VIPs itself; CI saw both.)
inside b systemctl kill -s SIGSTOP keepalived.service
inside b systemctl kill -s SIGKILL keepalived.service
# The killed keepalived sent no STOP: hakit's drop-in (hakit-stop.conf, ExecStopPost) released
# gw-b's floating IP and SNAT rule, else gw-b would answer for FIP2 beside gw-a.
aa_diag() { # what both nodes hold and say, for a failed step
  for n in a b; do
    echo "--- gw-$n: eth0, keepalived, nat-notify" >&2
    inside "$n" ip -o addr show dev eth0 >&2 || true
    inside "$n" systemctl status --no-pager keepalived.service 2>&1 | tail -n 12 >&2 || true
    inside "$n" journalctl -t nat-notify --no-pager -n 15 2>&1 >&2 || true
    inside "$n" nat-notify status >&2 || true
  done
}
if ! (wait_for 10 "gw-a holds both instances after the crash, gw-b released FIP2" holds a a); then
  aa_diag
  fail "active-active: gw-a does not hold both instances alone after gw-b's keepalived was killed (above)"
fi
matches 'converged to STOP' inside b journalctl -t nat-notify --no-pager --since "@$killed_at" \
  || fail "gw-b: no STOP transition after keepalived was killed (the ExecStopPost drop-in)"
# keepalived killed leaves its LAN VIP on eth1 (two gateways for the upper half's hosts):
# the drop-in removed it, and said so.
vip2_gone() { ! matches ' 198\.51\.100\.129/' inside b ip -o addr show dev eth1; }
wait_for 5 "gw-b no longer holds VI_2's LAN VIP" vip2_gone
matches 'keepalived is gone and left its VIP 198.51.100.129/24 on eth1: removed' \
  inside b journalctl -t nat-notify --no-pager --since "@$killed_at" \
  || fail "gw-b: the killed keepalived's VIP was not removed by the drop-in"
phase "active-active: keepalived started again on gw-b"
inside b systemctl start keepalived.service
wait_for 30 "gw-b takes VI_2 back after the crash" holds a b || { show_status; exit 1; }
ok "crash: VI_2 over to gw-a (gw-b's address released by the drop-in) and back"
sleep 1
touch "$run/stop-aa"
for c in 1 2; do
  wait "${aa_clients[$((c - 1))]}" || fail "active-active client $c failed: $(cat "$run/client-aa$c.log")"
  echo "systemd-lab: active-active client $c (half $c of the LAN):"
  traffic_ok "$run/traffic-aa$c.json" "$run/phases" || fail "active-active: client $c's traffic was interrupted (above)"
done
seen=$(tail -n "+$seen_from" "$run/server.log")
grep -qx 'tcp from 203.0.113.10' <<<"$seen" || fail "active-active: the server never saw FIP (VI_1's half): $seen"
grep -qx 'tcp from 203.0.113.11' <<<"$seen" || fail "active-active: the server never saw FIP2 (VI_2's half): $seen"
if grep -v 'from 203\.0\.113\.1[01]$' <<<"$seen"; then
  fail "active-active: the server saw a source other than the two floating IPs (above)"
fi
ok "active-active: both halves' TCP streams byte-exact and flowing, and UDP flows without a 50 ms blackout, across VI_2's graceful and crash moves; the server saw each half from its own floating IP"

# ---------------------------------------------------------------------------------------
# The cloud examples, each by its README behind its provider's network model.
# shellcheck source=tests/systemd-lab-clouds.sh
source "$top/tests/systemd-lab-clouds.sh"

echo "systemd-lab: all checks passed in $(( $(date +%s) - t_start )) s"
