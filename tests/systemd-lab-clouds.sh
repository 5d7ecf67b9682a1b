# shellcheck shell=bash disable=SC2154,SC2034 # run, top, up, lan, P, bin_dir, pids: systemd-lab.sh's; on_fail, after_block: read by its fail and run_section
# Sourced by systemd-lab.sh, on its two containers, networks and helpers: the Hetzner,
# DigitalOcean, AWS and Linode examples installed by their own READMEs, one after another, each behind a
# model of its provider's network written from the provider's documentation. They are the
# models `make chaos` runs, and crates/lab/src/hcloud.rs, digitalocean.rs and vpc/mod.rs cite
# each rule. Hetzner's and DigitalOcean's API is hakit-fake-cloud, held to the provider's
# OpenAPI document by Prism in tests/fip_claim_specs.rs. It moves the modelled network as its
# state says:
# - Hetzner: the Floating IP's route (--route-ns) and the Cloud Network's 0.0.0.0/0 route
#   (--network-ns);
# - DigitalOcean: the anchor gateway's Reserved IP translation (--edge-ns);
# - Linode: IP Sharing only (who may announce); the shared IP is routed by BGP, through a
#   route server that behaves as Linode's (FRR, crates/lab/src/bgp: the lab's).
# Their API's latency is modelled as zero (--instant). AWS's is moto (EC2) with IMDSv2 and
# the VPC model around it (hakit-vpc): routes, the internet gateway's translation and each
# ENI's source/destination check follow what EC2 says, polled every 20 ms.
#
# What only the provider's console does (a token, the first owner, the network's route) is
# said and done here in the model. The README's "edit pair.values" step is the test's edit:
# the model's addresses, IDs and API endpoint (API_URL, METADATA_URL), printed.
#
# Each example: README "Install" and "Verify" on both nodes; a graceful failover (systemctl
# stop keepalived) and a crash (keepalived frozen, then killed) of the MASTER, each with the
# return; the provider's state and the network follow; nat-notify status is clean on both
# nodes after each step; and the LAN client's traffic through the pair is checked:
# - Hetzner: one TCP stream and 1 ms UDP probes survive all four moves, and the server sees
#   only the Floating IP;
# - DigitalOcean: a new TCP stream after each move reaches the server from the Reserved IP.
#   The stream opened before falls silent while gw-b holds the role, as the README says: a
#   flow keeps the anchor IP of the droplet that opened it;
# - AWS and Linode: as Hetzner, with the Elastic IP and the shared IP.

fake_cloud=$bin_dir/hakit-fake-cloud
for b in hakit-fake-cloud hakit-vpc hakit-lab-conf; do
  [ -x "$bin_dir/$b" ] || fail "no $bin_dir/$b (make syslab builds the lab's tools)"
done
for f in /usr/lib/frr/zebra /usr/lib/frr/bgpd; do
  [ -x "$f" ] || skip "$f missing: the Linode phase's route server (scripts/deps.sh installs frr)"
done

# Both nodes back to machines without hakit, as before the next example: keepalived stopped
# (its STOP hook releases what the node held), hakit purged, the firewall empty.
cloud_clean() {
  for n in a b; do
    inside "$n" systemctl stop keepalived.service hakit-monitor.service conntrackd.service || true
    sh_in "$n" "dpkg -P hakit > /root/purge.log 2>&1" || fail "gw-$n: dpkg -P hakit: $(inside "$n" cat /root/purge.log)"
    inside "$n" nft flush ruleset
  done
}
# node, then networkd files as NAME=BODY: the machine's own network settings (what the
# provider's image configures), applied with networkctl.
net_config() {
  local n=$1 f; shift
  for f in "$@"; do
    printf '%s\n' "${f#*=}" | inside "$n" tee "/etc/systemd/network/${f%%=*}.network" > /dev/null
  done
  for i in eth0 eth1; do inside "$n" ip addr flush dev "$i"; done
  inside "$n" networkctl reload
  inside "$n" networkctl reconfigure eth0 eth1
}
# networkd's files as net_config takes them: the LAN leg (eth1) with one address, as the
# main phases' 20-lan.network; the WAN leg (eth0) with its gateway, addresses and any more
# [Network] settings (KEY=VALUE words).
lan_file() { # address/prefix
  printf '20-lan=[Match]\nName=eth1\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nConfigureWithoutCarrier=yes\nKeepConfiguration=static\n[Link]\nRequiredForOnline=no' "$1"
}
wan_file() { # gateway, then Address=... and other [Network] settings
  local gw=$1; shift
  printf '10-wan=[Match]\nName=eth0\n[Network]\n%s\nGateway=%s\n[Link]\nRequiredForOnline=routable' "$(printf '%s\n' "$@")" "$gw"
}
# The README's "edit /etc/hakit/pair.values, put the token into its file" step (run_section
# calls it after each block; it acts after the one that installs those files): each
# KEY=VALUE of $cloud_edit replaces the example's line, or is added; the fake's token.
edit_values() { # node, block
  grep -q 'install -m 0600 /usr/share/hakit/examples/.*/pair.values' <<<"$2" || return 0
  local text kv tok
  tok=$(grep -o '/etc/hakit/[a-z]*\.token' <<<"$2" || true)
  if [ -n "$tok" ]; then
    echo fake-token | inside "$1" tee "$tok" > /dev/null
    echo "systemd-lab: gw-$1: the console's token into $tok (the README's step)"
  fi
  text=$(inside "$1" cat /etc/hakit/pair.values)
  for kv in "${cloud_edit[@]}"; do
    if grep -q "^${kv%%=*}=" <<<"$text"; then
      text=$(awk -v k="${kv%%=*}" -v kv="$kv" 'index($0, k "=") == 1 { $0 = kv } 1' <<<"$text")
    else
      text+=$'\n'$kv
    fi
  done
  printf '%s\n' "$text" | inside "$1" tee /etc/hakit/pair.values > /dev/null
  echo "systemd-lab: gw-$1: the README's edit of pair.values: ${cloud_edit[*]}"
}
after_block=edit_values
# A provider API in namespace NS: hakit-fake-cloud with its flags; its owner in DIR/owner.
start_cloud() { # ns, control dir, flags...
  local ns=$1 dir=$2; shift 2
  mkdir -p "$dir"
  ip netns exec "$ns" "$fake_cloud" 203.0.113.253:8080 --instant "$@" --control-dir "$dir" \
    --log "$dir/requests.log" > "$dir/fake.log" 2>&1 &
  cloud_pid=$!
  pids+=("$cloud_pid")
  wait_for 10 "the fake provider API starts" test -s "$dir/owner"
}
owner_is() { [ "$(cat "$1/owner" 2>/dev/null)" = "$2" ]; }
# The MASTER's keepalived crashes: frozen, then killed (hakit-stop.conf's STOP releases).
ka_crash() {
  inside "$1" systemctl kill -s SIGSTOP keepalived.service
  inside "$1" systemctl kill -s SIGKILL keepalived.service
}
# A short TCP stream from client namespace NS to SERVER: byte-exact and still flowing.
fresh_stream() { # ns, server, tag
  rm -f "$run/stop-$3"
  ip netns exec "$1" "$bin_dir/hakit-lab-traffic" client "$2" --tcp \
    --stop-file "$run/stop-$3" --out "$run/fresh-$3.json" > "$run/fresh-$3.log" 2>&1 &
  local p=$!
  sleep 1.5
  touch "$run/stop-$3"
  wait "$p" || return 1
  python3 - "$run/fresh-$3.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["tcp"]
sys.exit(0 if t["bytes"] > 0 and t["first_mismatch_offset"] is None and t["alive_at_end"] else 1)
EOF
}
# Only the expected public source at the server (its log from line FROM on).
server_saw_only() { # log, from line, address
  local seen
  seen=$(tail -n "+$2" "$1" | grep ' from ' || true)
  grep -qx "tcp from $3" <<<"$seen" || fail "the server never saw $3: $seen"
  if grep -vx "\(tcp\|udp\) from ${3//./\\.}" <<<"$seen"; then fail "the server saw a source other than $3 (above)"; fi
}
# The traffic tool's server in NS on ADDR, its log LOG; returns once it listens.
start_server() { # ns, addr, log
  ip netns exec "$1" "$bin_dir/hakit-lab-traffic" server "$2" > "$3" 2>&1 &
  pids+=("$!")
  wait_for 10 "the traffic server on $2 listens" grep -q '^serving on' "$3"
}
cloud_diag() {
  for n in a b; do
    echo "--- gw-$n" >&2
    inside "$n" ip -o addr show >&2 || true
    inside "$n" journalctl -t nat-notify --no-pager -n 20 >&2 || true
    inside "$n" nat-notify status >&2 || true
  done
}

# The LAN client's TCP stream and 1 ms UDP probes through the pair (client namespace NS, to
# the server 203.0.113.254) across four moves: gw-a's keepalived stopped (gw-b takes over,
# and fip-claim --check says so there), started again (gw-a takes the role back after
# preempt_delay), frozen and killed (a crash), started again. IS NODE says the platform
# points at NODE (provider state, network, both statuses clean). Then the traffic's verdict
# with the platform's blackout bound (ms), and the server (its log LOG) saw only ADDR.
moves_under_traffic() { # label, is-function, client ns, blackout bound, public address, log
  local label=$1 is=$2 ns=$3 limit=$4 public=$5 log=$6 client from
  from=$(( $(wc -l < "$log") + 1 ))
  : > "$run/phases"
  rm -f "$run/stop-$label"
  ip netns exec "$ns" "$bin_dir/hakit-lab-traffic" client 203.0.113.254 --tcp --udp-ms 1 \
    --stop-file "$run/stop-$label" --out "$run/traffic-$label.json" > "$run/client-$label.log" 2>&1 &
  client=$!
  pids+=("$client")
  sleep 1
  phase "$label: systemctl stop keepalived on gw-a"
  inside a systemctl stop keepalived.service
  wait_for 15 "$label: gw-b takes over" "$is" b
  inside b fip-claim --config /etc/hakit/hakit.toml --check > /dev/null || fail "$label: fip-claim --check on gw-b after the failover"
  phase "$label: systemctl start keepalived on gw-a"
  inside a systemctl start keepalived.service
  wait_for 30 "$label: gw-a takes the role back" "$is" a
  sleep 2   # conntrackd settles before the next move
  phase "$label: gw-a's keepalived frozen and killed, a crash"
  ka_crash a
  wait_for 15 "$label: gw-b takes over after the crash" "$is" b
  phase "$label: keepalived started again on gw-a"
  inside a systemctl start keepalived.service
  wait_for 30 "$label: gw-a takes the role back after the crash" "$is" a
  sleep 1
  touch "$run/stop-$label"
  wait "$client" || fail "$label: the traffic client failed: $(cat "$run/client-$label.log")"
  traffic_ok "$run/traffic-$label.json" "$run/phases" "$limit" || fail "$label: the LAN client's traffic was interrupted (above)"
  server_saw_only "$log" "$from" "$public"
}

# ---------------------------------------------------------------------------------------
# Hetzner Cloud (crates/lab/src/hcloud.rs): the LAN is a routed Cloud Network. Each server
# has a point-to-point link to the network's gateway 198.51.100.1 (rule 1), which routes each
# allocated address to its server and nothing else (rule 2), and whose default route follows
# the network's 0.0.0.0/0 route as the API holds it (rule 3). The Floating IP is routed to
# its server by the API's state and must be configured there too (rule 4); no multicast
# crosses the gateway (rule 5). The public side is the bare-metal phases' upstream network.
echo "systemd-lab: -- Hetzner Cloud: examples/hetzner/README.md behind the Cloud Network model"
on_fail=cloud_diag
cloud_clean
hz_readme=$top/examples/hetzner/README.md
hnet=$P-hnet hc=$P-hc
for ns in "$hnet" "$hc"; do ip netns add "$ns"; ip -n "$ns" link set lo up; ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1; done
ip netns exec "$hnet" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
  net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0
ip -n "$hnet" link add "${P}hc" type veth peer name eth0 netns "$hc"
for n in a b; do
  ip -n "$lan" link set "$P${n}1" nomaster
  ip -n "$lan" link set "$P${n}1" netns "$hnet"
done
for port_addr in "${P}a1=198.51.100.2" "${P}b1=198.51.100.3" "${P}hc=198.51.100.50"; do
  port=${port_addr%=*}
  ip -n "$hnet" link set "$port" up
  ip -n "$hnet" addr add 198.51.100.1/32 dev "$port"
  ip -n "$hnet" route add "${port_addr#*=}/32" dev "$port"
done
ip -n "$hnet" route add blackhole 198.51.100.0/24
ip -n "$hnet" route add blackhole default
ip -n "$hc" link set eth0 up
ip -n "$hc" addr add 198.51.100.50/32 dev eth0
ip -n "$hc" route add 198.51.100.1/32 dev eth0
ip -n "$hc" route add default via 198.51.100.1   # Hetzner's NAT tutorial
# The API and the server on the public side.
ip -n "$up" addr add 203.0.113.253/32 dev br0
ip -n "$up" addr add 203.0.113.254/32 dev lo
for n in a b; do
  h=$([ $n = a ] && echo 2 || echo 3)
  # Hetzner's own networkd settings for a Cloud Network interface: the /32 address, the
  # gateway on link, the network's range through it.
  net_config "$n" "20-lan=[Match]
Name=eth1
[Network]
Address=198.51.100.$h/32
LinkLocalAddressing=no
[Route]
Destination=198.51.100.1/32
Scope=link
[Route]
Destination=198.51.100.0/24
Gateway=198.51.100.1
GatewayOnLink=yes
Metric=100
[Link]
RequiredForOnline=no"
done
lan_up() { matches ' 198\.51\.100\.2/32' inside a ip -o addr show dev eth1 && matches '198.51.100.0/24 via 198.51.100.1' inside b ip route; }
wait_for 20 "both servers on the Cloud Network" lan_up
hz=$run/hz-cloud
echo "systemd-lab: console step (done in the model): the Floating IP assigned to gw-a, the network's 0.0.0.0/0 route through 198.51.100.2"
start_cloud "$up" "$hz" --provider hetzner --ip 203.0.113.10 --owner 4711 \
  --node 4711=203.0.113.2 --node 4712=203.0.113.3 --route-ns "$up" --network-ns "$hnet" \
  --net-route 0.0.0.0/0=198.51.100.2
cloud_edit=(A_ID=4711 B_ID=4712 FIP_ID=7 NETWORK_ID=9
  API_URL=http://203.0.113.253:8080/v1 METADATA_URL=http://203.0.113.253:8080)
for n in a b; do run_section Install "$n" "$hz_readme"; done
# The provider points at node N (the Floating IP's owner and the network's egress route),
# N alone holds the Floating IP, and both statuses are clean.
hz_egress() { matches "default via $1" ip -n "$hnet" route show default; }
hz_master_is() {
  local id=4711 lan=198.51.100.2
  [ "$1" = b ] && id=4712 lan=198.51.100.3
  owner_is "$hz" "$id" && hz_egress "$lan" && master_is "$1"
}
wait_for 30 "Hetzner: gw-a MASTER, the Floating IP and the network route its, statuses clean" hz_master_is a
for n in a b; do run_section Verify "$n" "$hz_readme"; done
inside a fip-claim --config /etc/hakit/hakit.toml --check > /dev/null || fail "Hetzner: fip-claim --check on the MASTER gw-a does not exit 0"
ok "Hetzner installed by its README: gw-a MASTER, the API's Floating IP and 0.0.0.0/0 route on gw-a"
# The server beyond the edge (the Linode phase's too).
start_server "$up" 203.0.113.254 "$run/hz-server.log"
# The blackout bound: the Floating IP and the network route move with fip-claim's API calls
# (the fake answers at once, but each is an HTTP round trip on a loaded 2-core machine).
moves_under_traffic Hetzner hz_master_is "$hc" 250 203.0.113.10 "$run/hz-server.log"
ok "Hetzner: the TCP stream byte-exact and flowing, UDP without a blackout over 250 ms, across a graceful and a crash failover and both returns; the API's Floating IP and network route followed the MASTER; the server saw only the Floating IP"

# ---------------------------------------------------------------------------------------
# DigitalOcean (crates/lab/src/digitalocean.rs): each droplet has a public address behind
# the public gateway .1 and an anchor address behind the anchor gateway .17 (rule 1: the
# Reserved IP reaches a droplet only through its anchor; rule 2: it leaves as the Reserved IP
# only from the owner's anchor, through the anchor gateway; rule 3: a droplet's frames carry
# its own addresses only; rule 4: the VPC drops multicast).
echo "systemd-lab: -- DigitalOcean: examples/digitalocean/README.md behind the anchor-gateway model"
on_fail=cloud_diag
cloud_clean
kill "$cloud_pid" 2>/dev/null || true   # Hetzner's API
do_readme=$top/examples/digitalocean/README.md
# The VPC is the bare-metal LAN again (the Hetzner model's links back on the bridge), and
# drops multicast (rule 4).
for n in a b; do
  ip -n "$hnet" link set "$P${n}1" netns "$lan"
  ip -n "$lan" link set "$P${n}1" master br0 up
done
ip netns exec "$lan" nft -f - <<'EOF'
table bridge hk_do_vpc {
  chain forwarded { type filter hook forward priority 0; ip daddr 224.0.0.0/4 drop; }
}
EOF
# The public side: the upstream bridge becomes the datacenter's segment, with the public
# and the anchor gateway on it, and the internet beyond them.
pgw=$P-pgw agw=$P-agw inet=$P-inet
for ns in "$pgw" "$agw" "$inet"; do ip netns add "$ns"; ip -n "$ns" link set lo up; ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1; done
ip -n "$up" addr flush dev br0
for g in pgw agw; do
  gns=$([ $g = pgw ] && echo "$pgw" || echo "$agw")
  ip -n "$up" link add "$P$g" type veth peer name dc netns "$gns"
  ip -n "$up" link set "$P$g" master br0 up
  ip -n "$gns" link add ext type veth peer name "${g:0:1}0" netns "$inet"
  ip -n "$gns" link set dc up
  ip -n "$gns" link set ext up
  ip -n "$inet" link set "${g:0:1}0" up
done
ip -n "$pgw" addr add 203.0.113.1/28 dev dc
ip -n "$pgw" addr add 203.0.113.33/30 dev ext
ip -n "$pgw" route add default via 203.0.113.34
ip -n "$agw" addr add 203.0.113.17/28 dev dc
ip -n "$agw" addr add 203.0.113.37/30 dev ext
ip -n "$agw" route add default via 203.0.113.38
ip -n "$inet" addr add 203.0.113.34/30 dev p0
ip -n "$inet" addr add 203.0.113.38/30 dev a0
ip -n "$inet" route add 203.0.113.0/28 via 203.0.113.33    # the droplets' public addresses
ip -n "$inet" route add 203.0.113.100/32 via 203.0.113.37  # the Reserved IP; no route to the anchors
for a in 203.0.113.254 203.0.113.253 203.0.113.200 203.0.113.201; do ip -n "$inet" addr add "$a/32" dev lo; done
for ns in "$pgw" "$agw" "$inet"; do
  ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done
for n in a b; do
  h=$([ $n = a ] && echo 2 || echo 3)
  net_config "$n" "$(wan_file 203.0.113.1 "Address=203.0.113.$h/28" "Address=203.0.113.$((h + 16))/28" LinkLocalAddressing=no)" \
    "$(lan_file "198.51.100.$h/24")"
done
wan_up() { matches ' 203\.0\.113\.19/28' inside b ip -o addr show dev eth0 && matches ' 198\.51\.100\.2/24' inside a ip -o addr show dev eth1; }
wait_for 20 "both droplets with their public and anchor addresses" wan_up
# Rules 2 and 3 at the gateways: each droplet's frames carry its own addresses only; only the
# public addresses pass the public gateway; the anchor gateway passes only what the
# Reserved IP's translation (the fake's table, following the API's owner) touched.
mac_a=$(inside a cat /sys/class/net/eth0/address) mac_b=$(inside b cat /sys/class/net/eth0/address)
ip netns exec "$pgw" nft -f - <<EOF
table ip do_public {
  chain frames { type filter hook prerouting priority raw; iifname "dc" ether saddr $mac_a ip saddr != 203.0.113.2 drop; iifname "dc" ether saddr $mac_b ip saddr != 203.0.113.3 drop; }
  chain forwarded { type filter hook forward priority filter; policy drop; iifname "dc" oifname "ext" ip saddr { 203.0.113.2, 203.0.113.3 } accept; iifname "ext" oifname "dc" ip daddr { 203.0.113.2, 203.0.113.3 } accept; }
}
EOF
ip netns exec "$agw" nft -f - <<EOF
table ip do_anchor {
  chain frames { type filter hook prerouting priority raw; iifname "dc" ether saddr $mac_a ip saddr != 203.0.113.18 drop; iifname "dc" ether saddr $mac_b ip saddr != 203.0.113.19 drop; }
  chain leaving { type filter hook postrouting priority srcnat + 1; ct status snat accept; ct status dnat accept; drop; }
}
EOF
dc=$run/do-cloud
echo "systemd-lab: console step (done in the model): the Reserved IP 203.0.113.100 assigned to gw-a"
start_cloud "$inet" "$dc" --provider digitalocean --ip 203.0.113.100 --owner 1001 \
  --node 1001=203.0.113.2 --node 1002=203.0.113.3 \
  --anchor 1001=203.0.113.18 --anchor 1002=203.0.113.19 --edge-ns "$agw"
cloud_edit=(FIP=203.0.113.100 CHECK_TARGETS="203.0.113.200 203.0.113.201"
  A_WAN_IP=203.0.113.18 B_WAN_IP=203.0.113.19 A_EGRESS_GW=203.0.113.17 B_EGRESS_GW=203.0.113.17
  API_URL=http://203.0.113.253:8080/v2 METADATA_URL=http://203.0.113.253:8080)
for n in a b; do run_section Install "$n" "$do_readme"; done
# The API says node N holds the Reserved IP, N alone SNATs to its anchor, statuses clean.
do_master_is() {
  local id=1001 o=b anchor=203.0.113.18
  [ "$1" = b ] && id=1002 o=a anchor=203.0.113.19
  owner_is "$dc" "$id" && matches "snat to $anchor" inside "$1" nft list table ip hakit \
    && ! matches 'snat to' inside "$o" nft list table ip hakit && status_ok a && status_ok b
}
wait_for 30 "DigitalOcean: gw-a MASTER with the Reserved IP, statuses clean" do_master_is a
for n in a b; do run_section Verify "$n" "$do_readme"; done
inside a fip-claim --config /etc/hakit/hakit.toml --check > /dev/null || fail "DigitalOcean: fip-claim --check on the MASTER gw-a does not exit 0"
ok "DigitalOcean installed by its README: gw-a MASTER, the API's Reserved IP on gw-a"
start_server "$inet" 203.0.113.254 "$run/do-server.log"
fresh_stream "$lan" 203.0.113.254 do0 || fail "DigitalOcean: a new TCP stream through gw-a did not flow: $(cat "$run/fresh-do0.log")"
: > "$run/phases"
rm -f "$run/stop-do"
ip netns exec "$lan" "$bin_dir/hakit-lab-traffic" client 203.0.113.254 --tcp \
  --stop-file "$run/stop-do" --out "$run/traffic-do.json" > "$run/client-do.log" 2>&1 &
do_client=$!
pids+=("$do_client")
sleep 1
phase "DigitalOcean: systemctl stop keepalived on gw-a"
inside a systemctl stop keepalived.service
wait_for 15 "DigitalOcean: gw-b takes the Reserved IP" do_master_is b
fresh_stream "$lan" 203.0.113.254 do1 || fail "DigitalOcean: a new TCP stream through gw-b did not flow: $(cat "$run/fresh-do1.log")"
inside b fip-claim --config /etc/hakit/hakit.toml --check > /dev/null || fail "DigitalOcean: fip-claim --check on gw-b after the failover"
phase "DigitalOcean: systemctl start keepalived on gw-a"
inside a systemctl start keepalived.service
wait_for 30 "DigitalOcean: gw-a takes the role back" do_master_is a
fresh_stream "$lan" 203.0.113.254 do2 || fail "DigitalOcean: a new TCP stream through gw-a (back) did not flow"
phase "DigitalOcean: gw-a's keepalived frozen and killed, a crash"
ka_crash a
wait_for 15 "DigitalOcean: gw-b takes over after the crash" do_master_is b
fresh_stream "$lan" 203.0.113.254 do3 || fail "DigitalOcean: a new TCP stream through gw-b after the crash did not flow"
phase "DigitalOcean: keepalived started again on gw-a"
inside a systemctl start keepalived.service
wait_for 30 "DigitalOcean: gw-a takes the role back after the crash" do_master_is a
fresh_stream "$lan" 203.0.113.254 do4 || fail "DigitalOcean: a new TCP stream through gw-a (back after the crash) did not flow"
server_saw_only "$run/do-server.log" 1 203.0.113.100
# The stream opened through gw-a: byte-exact throughout, silent while gw-b held the role
# (its anchor cannot carry gw-a's flow: the model holds rule 3). Whether it resumes once gw-a
# is back is said, not required (the README promises nothing for it).
touch "$run/stop-do"
wait "$do_client" || true   # a stream that ended by a reset still wrote its report
python3 - "$run/traffic-do.json" <<'EOF' || fail "DigitalOcean: the stream opened through gw-a is not what the README says (above)"
import json, sys
t = json.load(open(sys.argv[1]))["tcp"]
print(f"systemd-lab: the stream opened through gw-a: {t['bytes']} bytes, mismatch at {t['first_mismatch_offset']}, "
      f"longest silence {t['longest_stall_ms']:.0f} ms (gw-b's tenure), flowing at the end {t['alive_at_end']}")
sys.exit(0 if t["first_mismatch_offset"] is None and t["longest_stall_ms"] >= 2000 else 1)
EOF
ok "DigitalOcean: after a graceful and a crash failover and both returns the API's Reserved IP followed the MASTER, each new TCP stream flowed byte-exact from the Reserved IP, and the stream opened through gw-a waited out gw-b's tenure, as the README says"

# ---------------------------------------------------------------------------------------
# AWS (crates/lab/src/vpc/mod.rs): the LAN subnet 198.51.100.0/26 is the LAN bridge, the WAN
# subnet 198.51.100.64/26 the upstream bridge, the VPC router (.1 and .65), the EC2 endpoint
# (.70) and the internet gateway one namespace ($P-vpc, run by hakit-vpc) on both. Rule 1:
# the LAN table's default route names one ENI, and the packet arrives on that ENI's
# interface. Rule 2: source/destination check per ENI. Rule 3: the internet gateway
# translates only an associated private address, one to one. Rule 4: no multicast. Rule 6:
# a secondary address reaches the ENI that holds it.
echo "systemd-lab: -- AWS: examples/aws/README.md in the VPC model"
cloud_clean
kill "$cloud_pid" 2>/dev/null || true   # DigitalOcean's API
aws_readme=$top/examples/aws/README.md
for ns in "$pgw" "$agw" "$inet"; do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  ip netns del "$ns"
done
vpcns=$P-vpc
for ns in "$vpcns" "$inet"; do ip netns add "$ns"; ip -n "$ns" link set lo up; ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1; done
ip -n "$lan" link add "${P}vl" type veth peer name lan0 netns "$vpcns"
ip -n "$up" link add "${P}vw" type veth peer name wan0 netns "$vpcns"
ip -n "$lan" link set "${P}vl" master br0 up
ip -n "$up" link set "${P}vw" master br0 up
ip -n "$vpcns" link add igw0 type veth peer name eth0 netns "$inet"
for i in lan0 wan0 igw0; do ip -n "$vpcns" link set "$i" up; done
ip -n "$inet" link set eth0 up
ip -n "$inet" addr add 203.0.113.254/24 dev eth0
ip -n "$inet" route add 203.0.113.10/32 via 203.0.113.1
# The LAN client on its own port of the LAN subnet (so that the fabric's per-ENI rules see
# its frames), its default route the VPC router's (the route table). The bridge's own
# address goes: nothing else answers on the subnet.
ip -n "$lan" addr flush dev br0
awc=$P-lan2
if ! ip netns list | grep -qw "$awc"; then
  ip netns add "$awc"
  ip -n "$awc" link set lo up
  ip netns exec "$awc" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
  ip -n "$lan" link add "${P}c2" type veth peer name eth0 netns "$awc"
  ip -n "$lan" link set "${P}c2" master br0 up
  ip -n "$awc" link set eth0 up
fi
ip -n "$awc" addr flush dev eth0
ip -n "$awc" addr add 198.51.100.50/26 dev eth0
ip -n "$awc" route replace default via 198.51.100.1
aws=$run/aws
mkdir -p "$aws"
echo "systemd-lab: console steps (done in moto): the instances and their ENIs, FIP_PRIVATE and the Elastic IP on gw-a's WAN ENI, the private route table to gw-a's LAN ENI, the EC2 endpoint; the instance role is IMDSv2's"
(cd "$top" && exec "$bin_dir/hakit-vpc" --vpc-ns "$vpcns" --switch-ns "$lan" --switch-ns "$up" \
  --port "${P}a1=primary_lan_eni" --port "${P}b1=secondary_lan_eni" \
  --port "${P}a0=primary_wan_eni" --port "${P}b0=secondary_wan_eni" \
  --world "$aws/world.json" --log "$aws/model.log") > "$aws/hakit-vpc.log" 2>&1 &
cloud_pid=$!
pids+=("$cloud_pid")
wait_for 60 "moto and the AWS example's world (hakit-vpc)" test -s "$aws/world.json"
world() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$aws/world.json" "$1"; }
for n in a b; do
  role=$([ $n = a ] && echo primary || echo secondary) h=$([ $n = a ] && echo 10 || echo 11)
  # The ENIs' MACs are the machine's hardware (IMDS names each ENI by its MAC).
  for i in 0 1; do
    mac=$(world "${role}_$([ $i = 0 ] && echo wan || echo lan)_mac")
    inside "$n" ip link set "eth$i" down
    inside "$n" ip link set "eth$i" address "$mac"
    inside "$n" ip link set "eth$i" up
  done
  net_config "$n" "$(wan_file 198.51.100.65 "Address=198.51.100.$((h + 64))/26" LinkLocalAddressing=no)" \
    "$(lan_file "198.51.100.$h/26")"
done
vpc_up() { matches ' 198\.51\.100\.75/26' inside b ip -o addr show dev eth0 && matches ' 198\.51\.100\.10/26' inside a ip -o addr show dev eth1; }
wait_for 20 "both instances in their subnets" vpc_up
cloud_edit=(LAN_VIP=198.51.100.9/26 LAN_NET=198.51.100.0/26 UPSTREAM_GW=198.51.100.65
  FIP_PRIVATE=198.51.100.80 "A_ID=$(world primary)" "B_ID=$(world secondary)"
  API_URL=http://198.51.100.70:5000 METADATA_URL=http://198.51.100.65:8081)
for n in a b; do run_section Install "$n" "$aws_readme"; done
# What the VPC does, as the model applied EC2's state: the LAN's default route to node N's
# LAN address (its LAN ENI), FIP_PRIVATE (with the Elastic IP) to its WAN ENI; N alone holds
# FIP_PRIVATE; both statuses clean.
has_private() { matches ' 198\.51\.100\.80/' inside "$1" ip -o addr show dev eth0; }
aws_master_is() {
  local lan_ip=198.51.100.10 wan_ip=198.51.100.74 o=b
  [ "$1" = b ] && lan_ip=198.51.100.11 wan_ip=198.51.100.75 o=a
  matches "default via $lan_ip" ip -n "$vpcns" route show table 100 default \
    && matches "198.51.100.80 via $wan_ip" ip -n "$vpcns" route show 198.51.100.80/32 \
    && has_private "$1" && ! has_private "$o" && status_ok a && status_ok b
}
aws_diag() { cloud_diag; echo "--- the VPC model's log" >&2; tail -n 20 "$aws/model.log" >&2; }
on_fail=aws_diag
wait_for 30 "AWS: gw-a MASTER, the route table and the Elastic IP on its ENIs, statuses clean" aws_master_is a
for n in a b; do run_section Verify "$n" "$aws_readme"; done
inside a fip-claim --config /etc/hakit/hakit.toml --check > /dev/null || fail "AWS: fip-claim --check on the MASTER gw-a does not exit 0"
ok "AWS installed by its README: gw-a MASTER, EC2's route table and Elastic IP on its ENIs"
start_server "$inet" 203.0.113.254 "$run/aws-server.log"
# The blackout bound is EC2's: moto (a Python server on this 2-core machine, beside the two
# containers) takes tens of milliseconds per call, and the LAN's route moves with the claim's
# third call (BENCHMARKS.md, the platforms table).
moves_under_traffic AWS aws_master_is "$awc" 1000 203.0.113.10 "$run/aws-server.log"
ok "AWS: the TCP stream byte-exact and flowing, UDP without a blackout over 1 s (EC2's latency), across a graceful and a crash failover and both returns; EC2's route table, Elastic IP and source/dest checks followed the MASTER; the server saw only the Elastic IP"

# ---------------------------------------------------------------------------------------
# Linode (crates/lab/src/bgp, make chaos --lab linode): the LAN is a VLAN (multicast VRRP);
# the shared IP is on lo of both nodes and routed by BGP. lelastic (GoBGP) on each node peers
# over IPv6 with a route server that behaves as Linode's: FRR in the upstream namespace,
# accepting only the shared IP from the two Linodes, 65000:1 (primary) over 65000:2, the
# selected path kept between equals; its best path goes into the upstream's kernel, which is
# how traffic to the shared IP finds the MASTER. Linode's API (IP Sharing) is the fake's.
echo "systemd-lab: -- Linode: examples/linode/README.md behind the route-server model"
cloud_clean
kill "$cloud_pid" 2>/dev/null || true   # hakit-vpc
ip netns pids "$vpcns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
ip netns del "$vpcns"
ip netns exec "$lan" nft delete table bridge hakit_vpc 2>/dev/null || true
ip netns exec "$up" nft delete table bridge hakit_vpc 2>/dev/null || true
ip netns exec "$lan" nft delete table bridge hk_do_vpc 2>/dev/null || true
li_readme=$top/examples/linode/README.md
# The VLAN's client, the LAN VIP its gateway.
ip -n "$awc" addr flush dev eth0
ip -n "$awc" addr add 198.51.100.50/24 dev eth0
ip -n "$awc" route replace default via 198.51.100.1
# The upstream: the nodes' gateway .1 and their own addresses on-link, nothing else of the
# prefix (no path to the shared IP means no traffic, as on Linode); the route server's IPv6.
ip netns exec "$up" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
  net.ipv6.conf.br0.disable_ipv6=0
ip -n "$up" addr flush dev br0
ip -n "$up" addr add 203.0.113.1/32 dev br0
for h in 2 3; do ip -n "$up" route add "203.0.113.$h/32" dev br0; done
ip -n "$up" addr add 2001:db8:ff::254/64 dev br0 nodad
# A link-local address too (br0 was made with IPv6 off, so it got none): FRR resets every
# IPv6 session on an interface without one ("nexthop_set failed").
ip -n "$up" addr add fe80::254/64 dev br0 nodad
ip -n "$up" addr add 203.0.113.253/32 dev lo
rs=$run/frr-rs
mkdir -p "$rs"
{ echo "log file $rs/frr.log informational"; echo "debug bgp neighbor-events"
  "$bin_dir/hakit-lab-conf" route-server 2001:db8:ff::2 2001:db8:ff::3; } > "$rs/frr.conf"
chown -R frr:frr "$rs"
for d in zebra bgpd; do
  port=()
  [ $d = bgpd ] && port=(-p 179)
  ip netns exec "$up" "/usr/lib/frr/$d" -u frr -g frr -f "$rs/frr.conf" -i "$rs/$d.pid" \
    -z "$rs/zserv.api" --vty_socket "$rs" -A 127.0.0.1 "${port[@]}" > "$rs/$d.log" 2>&1 &
  pids+=("$!")
  wait_for 10 "the route server's $d starts" test -S "$rs/$d.vty"
done
echo "systemd-lab: console step (done in the model): the shared IP 203.0.113.10 is gw-a's"
start_cloud "$up" "$run/li-cloud" --provider linode --ip 203.0.113.10 --owner 12345 \
  --node 12345=203.0.113.2 --node 12346=203.0.113.3
for n in a b; do
  h=$([ $n = a ] && echo 2 || echo 3)
  # The machine's own setting: its one static IPv6 address, the one the route server peers
  # with. FRR sends router advertisements for the extended next hop, and hakit's sysctl file
  # accepts them on the WAN (accept_ra 2, for a Linode's SLAAC address): without this the
  # node would also take a SLAAC address, connect from it, and be refused by the route
  # server (seen in this lab; make chaos's Linode lab sets the same).
  echo 'net.ipv6.conf.eth0.autoconf = 0' | inside "$n" tee /etc/sysctl.d/80-lab-static-ipv6.conf > /dev/null
  inside "$n" sysctl -q -w net.ipv6.conf.eth0.autoconf=0
  net_config "$n" "$(wan_file 203.0.113.1 "Address=203.0.113.$h/24" "Address=2001:db8:ff::$h/64" IPv6AcceptRA=no LinkLocalAddressing=ipv6)" \
    "$(lan_file "198.51.100.$h/24")"
  # lelastic, built from github.com/linode/lelastic (a download the lab cannot make): the
  # lab's, gobgpd with the configuration lelastic gives GoBGP (hakit-lab-conf lelastic) and
  # the addresses on lo announced at start with the role's community, as lelastic does.
  "$bin_dir/hakit-lab-conf" lelastic | inside "$n" tee /etc/lelastic-lab.toml > /dev/null
  inside "$n" tee /usr/local/bin/lelastic > /dev/null <<'EOF'
#!/bin/sh
# lelastic for the systemd lab's route server (tests/systemd-lab-clouds.sh): GoBGP with
# lelastic's configuration; the global addresses on lo announced once, at start, with the
# community of -primary (65000:1) or -secondary (65000:2).
c=65000:2
for a in "$@"; do [ "$a" = -primary ] && c=65000:1; done
gobgpd -f /etc/lelastic-lab.toml --api-hosts 127.0.0.1:50051 -p &
pid=$!
trap 'kill $pid' TERM INT
i=0
until gobgp global >/dev/null 2>&1; do i=$((i + 1)); [ $i -gt 500 ] && exit 1; sleep 0.01; done
for a in $(ip -o -4 addr show dev lo scope global | awk '{print $4}'); do
  gobgp global rib add -a ipv4 "$a" origin incomplete community "$c"
done
wait $pid
EOF
  inside "$n" chmod 0755 /usr/local/bin/lelastic
done
echo "systemd-lab: the lab's lelastic in /usr/local/bin on both nodes (console step: lelastic from github)"
li_up() { matches '2001:db8:ff::3/64' inside b ip -o addr show dev eth0; }
wait_for 20 "both Linodes with their IPv6 addresses" li_up
# The README's edits: lelastic's data center, then the values and the token.
li_edit() { # node, block
  if grep -q 'lelastic.service /etc/systemd/system/' <<<"$2"; then
    inside "$1" sed -i 's/-dcid DCID/-dcid 14/' /etc/systemd/system/lelastic.service
    echo "systemd-lab: gw-$1: the README's edit of lelastic.service: -dcid 14 (the shared IP in 90-shared-ip.network is the lab's already)"
  fi
  edit_values "$1" "$2"
}
after_block=li_edit
cloud_edit=(API_URL=http://203.0.113.253:8080/v4 METADATA_URL=http://203.0.113.253:8080)
for n in a b; do run_section Install "$n" "$li_readme"; done
after_block=edit_values
# The route server routes the shared IP to node N (its IPv6 address or link-local), N
# announces primary and the other secondary, both statuses clean.
routed_to() { # node
  local h ll
  h=$([ "$1" = a ] && echo 2 || echo 3)
  ll=$(inside "$1" ip -6 -o addr show dev eth0 scope link | awk '{print $4}' | cut -d/ -f1)
  local via
  via=$(ip -n "$up" -4 route show 203.0.113.10/32)
  [ "$(grep -c 'via' <<<"$via")" = 1 ] && { grep -q "via inet6 2001:db8:ff::$h " <<<"$via" || grep -q "via inet6 $ll " <<<"$via"; }
}
li_master_is() {
  local o=b
  [ "$1" = b ] && o=a
  routed_to "$1" && matches 'primary (65000:1)' inside "$1" nat-notify status \
    && matches 'secondary (65000:2)' inside "$o" nat-notify status && status_ok a && status_ok b
}
li_diag() {
  cloud_diag
  ip -n "$up" -4 route show 203.0.113.10/32 >&2
  for n in a b; do inside "$n" gobgp global rib -a ipv4 >&2 || true; inside "$n" journalctl -u lelastic --no-pager -n 15 >&2 || true; done
  echo "--- the route server's log" >&2
  tail -n 30 "$rs/frr.log" >&2
}
on_fail=li_diag
wait_for 60 "Linode: gw-a MASTER, primary at the route server, statuses clean" li_master_is a
for n in a b; do run_section Verify "$n" "$li_readme"; done
inside a fip-claim --config /etc/hakit/hakit.toml --check > /dev/null || fail "Linode: fip-claim --check on the MASTER gw-a does not exit 0"
if inside b fip-claim --config /etc/hakit/hakit.toml --check > /dev/null; then fail "Linode: fip-claim --check exits 0 on the BACKUP gw-b too"; fi
ok "Linode installed by its README: gw-a MASTER and primary, the route server routes the shared IP to it"
# The blackout bound is the route server's: the new path's UPDATE, FRR's best path and its
# kernel route (about a tenth of a second in make chaos --lab linode).
moves_under_traffic Linode li_master_is "$awc" 1000 203.0.113.10 "$run/hz-server.log"
ok "Linode: the TCP stream byte-exact and flowing, UDP without a blackout over 1 s (the route server's), across a graceful and a crash failover and both returns; the route server followed the primary; the server saw only the shared IP"
on_fail=
