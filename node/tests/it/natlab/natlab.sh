#!/usr/bin/env bash
# natlab.sh — two hosts behind two separate NATs plus one public host, built
# from Linux network namespaces only. Nothing is attached to the root
# namespace: no veth, no route, no iptables rule outside the lab, so no
# packet can leave it. Needs root, iproute2, iptables (nft backend is fine),
# python3 (for the checks).
#
#   "internet" 198.51.100.0/24 (bridge br0 in namespace nl-pub, .254)
#      ├── nl-boot   198.51.100.10   public bootstrap / relay node
#      ├── nl-rta    198.51.100.1  ── NAT A ── LAN 192.168.1.0/24 ── nl-a 192.168.1.10
#      └── nl-rtb    198.51.100.2  ── NAT B ── LAN 192.168.1.0/24 ── nl-b 192.168.1.20
#
# Both LANs use the SAME private range on purpose (like two home routers):
# a node that gossips its private address makes peers dial the wrong LAN.
#
# NAT kinds (NAT=cone|symmetric, default cone):
#   cone       MASQUERADE, source port kept when free: endpoint-independent
#              mapping, address+port-dependent filtering. Hole punching works.
#   symmetric  MASQUERADE --random-fully: a new random port per destination.
#              Hole punching fails; only a relay connects A and B.
# Routers drop every unsolicited packet from the WAN (INPUT and FORWARD), and
# because a dropped packet never confirms its conntrack entry, an early punch
# packet cannot steal the port mapping the other side is about to create.
#
# The default "internet" is TEST-NET-2, which skrei's address table
# (protocol/src/address.rs) rightly calls special-purpose: skrei's tests set
# PUB_NET to a global range (the lab is sealed, so no packet reaches it).
#
# Names: /etc/netns/<ns>/hosts (which `ip netns exec` shows as /etc/hosts)
# gives boot, a and b the name boot.natlab.test for the public node, for
# /dns4 multiaddrs.
#
# Counters (`natlab.sh counters`, lines "HOST NAME PACKETS BYTES"): rules
# without a verdict that only count, so tests can see which way traffic went:
#   rtb from-nat-a          packets from NAT A's address let into B's LAN
#                           (direct A->B traffic: only after a hole punch)
#   rtb from-nat-a-libp2p   the same, from port 4001 (a direct libp2p
#                           connection; cone NAT keeps the port)
#   rtb from-boot           packets from the public node into B's LAN
#   rta from-nat-b, from-nat-b-libp2p, from-boot: the same for A
#   a, b lan-dial           packets the host sent to another address of its
#                           LAN (not the router): the other host's private
#                           address, which is not on this LAN
#   a, b lan-dial-libp2p    the same, to port 4001 (libp2p)
#
# Optional LATENCY=40ms adds netem delay on each router's WAN side (needs the
# kernel's sch_netem; this machine's kernel lacks it, so it is then skipped).
#
# Usage:
#   natlab.sh up                 build the lab (idempotent: tears down first)
#   natlab.sh check              prove the NAT properties (exit 1 on failure)
#   natlab.sh counters           print the counters
#   natlab.sh exec a|b|boot|rta|rtb|pub CMD...   run CMD inside a namespace
#   natlab.sh down               kill what runs in the lab, delete it
#   natlab.sh demo               up, check, down
# Env: NAT=cone|symmetric, PUB_NET=A.B.C (the "internet", default TEST-NET-2), LAB=prefix.
#
# Typical use for skrei (node/tests/it/natlab.rs does this from the tests):
#   PUB_NET=11.14.0 natlab.sh up
#   natlab.sh exec boot skrei node --relay-server --listen /ip4/0.0.0.0/tcp/4001 ...
#   natlab.sh exec a    skrei node --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /dns4/boot.natlab.test/tcp/4001/p2p/<id> ...
set -euo pipefail

P=${LAB:-nl}               # namespace name prefix (LAB=name runs a second lab beside the first)
PUB_NET=${PUB_NET:-198.51.100}  # the lab's "internet" (TEST-NET-2); override if a
                                # component refuses non-global addresses
LAN_NET=192.168.1          # both LANs
NAT=${NAT:-cone}
LATENCY=${LATENCY:-}
NSES="$P-pub $P-boot $P-rta $P-rtb $P-a $P-b"

ns()  { ip netns exec "$P-$1" "${@:2}"; }
have() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

down() {
  for n in $NSES; do
    if have "$n"; then
      # Only processes inside the lab's own namespaces, each by its pid.
      for pid in $(ip netns pids "$n" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      sleep 0.2
      for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$n"
    fi
    rm -rf "/etc/netns/$n"
  done
}

# veth pair: $1 ns-side-a name, $2 ns a, $3 ns-side-b name, $4 ns b
veth() {
  ip link add "$1" netns "$P-$2" type veth peer name "$3" netns "$P-$4"
}

# A rule that only counts (no verdict): $1 namespace, $2 chain, $3 name, rest: match.
count() { ns "$1" iptables -w -A "$2" "${@:4}" -m comment --comment "natlab:$3"; }

router() { # $1 = a|b, $2 = WAN address last octet, $3 = LAN host last octet
  local r="rt$1" h="$1" wan="$PUB_NET.$2"
  local other=b; [ "$1" = b ] && other=a
  local other_wan="$PUB_NET.1"; [ "$1" = a ] && other_wan="$PUB_NET.2"
  veth wan "$r" "up-$r" pub
  ns pub ip link set "up-$r" master br0 up
  veth lan "$r" eth0 "$h"
  ns "$r" ip addr add "$wan/24" dev wan
  ns "$r" ip addr add "$LAN_NET.1/24" dev lan
  ns "$r" ip link set lo up; ns "$r" ip link set wan up; ns "$r" ip link set lan up
  ns "$r" sysctl -qw net.ipv4.ip_forward=1
  ns "$r" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  local masq=(-j MASQUERADE)
  [ "$NAT" = symmetric ] && masq=(-j MASQUERADE --random-fully)
  ns "$r" iptables -w -t nat -A POSTROUTING -o wan "${masq[@]}"
  ns "$r" iptables -w -A FORWARD -i lan -o wan -j ACCEPT
  # Counted where they are let in (the next rule), so dropped punches are not.
  local in=(-i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED)
  count "$r" FORWARD "from-nat-$other" "${in[@]}" -s "$other_wan"
  count "$r" FORWARD "from-nat-$other-libp2p" "${in[@]}" -s "$other_wan" -p udp --sport 4001
  count "$r" FORWARD "from-nat-$other-libp2p" "${in[@]}" -s "$other_wan" -p tcp --sport 4001
  count "$r" FORWARD from-boot "${in[@]}" -s "$PUB_NET.10"
  ns "$r" iptables -w -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ns "$r" iptables -w -A FORWARD -i wan -j DROP
  ns "$r" iptables -w -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ns "$r" iptables -w -A INPUT -i wan -j DROP
  if [ -n "$LATENCY" ] && ! ns "$r" tc qdisc add dev wan root netem delay "$LATENCY" 2>/dev/null; then
    echo "warning: no netem in this kernel (sch_netem); LATENCY=$LATENCY ignored" >&2
    LATENCY=
  fi
  # The NATed host: a private address, the router as its only way out.
  ns "$h" ip addr add "$LAN_NET.$3/24" dev eth0
  ns "$h" ip link set lo up; ns "$h" ip link set eth0 up
  ns "$h" ip route add default via "$LAN_NET.1"
  ns "$h" sysctl -qw net.ipv4.ip_forward=0
  ns "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  # Anything sent to another address of the LAN than the router's.
  ns "$h" iptables -w -N natlab-lan
  ns "$h" iptables -w -A OUTPUT -o eth0 -d "$LAN_NET.0/24" -j natlab-lan
  ns "$h" iptables -w -A natlab-lan -d "$LAN_NET.1" -j RETURN
  count "$h" natlab-lan lan-dial
  count "$h" natlab-lan lan-dial-libp2p -p udp --dport 4001
  count "$h" natlab-lan lan-dial-libp2p -p tcp --dport 4001
}

hosts() { # /etc/hosts as `ip netns exec` shows it in the namespaces that run nodes
  for n in boot a b; do
    mkdir -p "/etc/netns/$P-$n"
    printf '127.0.0.1 localhost\n%s boot.natlab.test\n' "$PUB_NET.10" > "/etc/netns/$P-$n/hosts"
  done
}

counters() {
  for h in a b rta rtb; do
    ns "$h" iptables -w -L -v -n -x | awk -v h="$h" '
      match($0, /natlab:[a-z0-9-]+/) { n = substr($0, RSTART + 7, RLENGTH - 7); p[n] += $1; b[n] += $2 }
      END { for (n in p) print h, n, p[n], b[n] }' | sort
  done
}

up() {
  down
  for n in $NSES; do ip netns add "$n"; done
  # The "internet": one bridge; it also gets an address to act as an
  # outside host for the checks.
  ns pub ip link add br0 type bridge
  ns pub ip addr add "$PUB_NET.254/24" dev br0
  ns pub ip link set lo up; ns pub ip link set br0 up
  ns pub sysctl -qw net.ipv4.ip_forward=0
  ns pub sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  # The public node.
  veth eth0 boot up-boot pub
  ns pub ip link set up-boot master br0 up
  ns boot ip addr add "$PUB_NET.10/24" dev eth0
  ns boot ip link set lo up; ns boot ip link set eth0 up
  ns boot sysctl -qw net.ipv4.ip_forward=0
  ns boot sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  router a 1 10
  router b 2 20
  hosts
  echo "natlab up (NAT=$NAT${LATENCY:+, latency $LATENCY}): boot $PUB_NET.10;" \
       "A $LAN_NET.10 behind $PUB_NET.1; B $LAN_NET.20 behind $PUB_NET.2"
}

# --- checks ---------------------------------------------------------------
# One small python helper, run inside a namespace:
#   tcp-listen PORT SECS          accept one connection, print the peer address
#   tcp-dial HOST PORT SECS       print "ok" or the error
#   udp-echo PORT SECS            answer every datagram, print sources
#   udp-ask HOST PORT SECS        send, print the answer or "timeout"
#   punch LPORT HOST PORT SECS    send to HOST:PORT every 100 ms from LPORT,
#                                 print "got <src>" for the first datagram heard
PY='
import socket, sys, time
cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "tcp-listen":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(a[0]))); s.listen(1); s.settimeout(float(a[1]))
    try:
        c, peer = s.accept(); print("accepted", peer[0]); c.close()
    except socket.timeout:
        print("no connection")
elif cmd == "tcp-dial":
    try:
        socket.create_connection((a[0], int(a[1])), timeout=float(a[2])).close(); print("ok")
    except Exception as e:
        print("fail", type(e).__name__, e)
elif cmd == "udp-echo":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(a[0])))
    end = time.time() + float(a[1]); s.settimeout(0.2)
    while time.time() < end:
        try:
            d, src = s.recvfrom(100); print("from", src[0], src[1], flush=True); s.sendto(d, src)
        except socket.timeout:
            pass
elif cmd == "udp-ask":
    # Asks again every 0.25 s: on a loaded machine the echo may start late.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.25)
    end = time.time() + float(a[2]); answer = None
    while answer is None and time.time() < end:
        s.sendto(b"hi", (a[0], int(a[1])))
        try:
            d, answer = s.recvfrom(100)
        except socket.timeout:
            pass
    print("answer from %s %d" % answer if answer else "timeout")
elif cmd == "punch":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(a[0])))
    s.settimeout(0.1); end = time.time() + float(a[3]); got = None
    while time.time() < end:
        s.sendto(b"punch", (a[1], int(a[2])))
        try:
            d, src = s.recvfrom(100); got = src
            s.sendto(b"punch", (a[1], int(a[2]))); break
        except socket.timeout:
            pass
    print("got %s:%d" % got if got else "nothing")
'
py() { local n=$1; shift; ns "$n" python3 -c "$PY" "$@"; }

FAILED=0
expect() { # $1 label, $2 expected substring, $3 actual
  if [[ "$3" == *"$2"* ]]; then echo "PASS  $1: $3"
  else echo "FAIL  $1: wanted '$2', got '$3'"; FAILED=1; fi
}

check() {
  for n in $NSES; do have "$n" || { echo "lab is not up: run '$0 up'"; exit 1; }; done
  local out T; T=$(mktemp -d)

  # 1. A dials out to the public node; the public node sees NAT A's address.
  py boot tcp-listen 4001 5 > $T/l & local l=$!; sleep 1
  expect "A dials out to boot (TCP)" ok "$(py a tcp-dial $PUB_NET.10 4001 3)"
  wait $l; expect "boot sees A as NAT A's public address" "accepted $PUB_NET.1" "$(cat $T/l)"

  # 2. Nobody outside can dial A: not at NAT A's address, not at A's private one.
  py a tcp-listen 4001 7 > $T/l & l=$!; sleep 0.3
  expect "boot cannot dial A at NAT A ($PUB_NET.1:4001)" fail "$(py boot tcp-dial $PUB_NET.1 4001 2)"
  expect "boot cannot dial A's private address" fail "$(py boot tcp-dial $LAN_NET.10 4001 2)"
  expect "B cannot dial A at NAT A" fail "$(py b tcp-dial $PUB_NET.1 4001 2)"
  # B's LAN has the same range: A's private address means nothing there.
  expect "B dialing A's private address does not reach A" fail "$(py b tcp-dial $LAN_NET.10 4001 2)"
  wait $l; expect "A's listener got nothing" "no connection" "$(cat $T/l)"

  # 3. UDP: replies come back through the mapping (what QUIC, relays, QAD need).
  py boot udp-echo 3478 8 > $T/l & l=$!; sleep 0.5
  expect "A's UDP reaches boot and the answer returns" "answer from $PUB_NET.10" "$(py a udp-ask $PUB_NET.10 3478 6)"
  wait $l; echo "      boot saw A's UDP as: $(head -1 $T/l)"

  # 4. Hole punch A <-> B, both from port 5000 to the other's NAT port 5000.
  #    cone: both sides hear each other. symmetric: neither does.
  py a punch 5000 $PUB_NET.2 5000 4 > $T/a & local pa=$!
  py b punch 5000 $PUB_NET.1 5000 4 > $T/b & local pb=$!
  wait $pa $pb
  local ra rb; ra=$(cat $T/a); rb=$(cat $T/b)
  if [ "$NAT" = symmetric ]; then
    expect "symmetric NAT: A hears nothing from B" nothing "$ra"
    expect "symmetric NAT: B hears nothing from A" nothing "$rb"
  else
    expect "cone NAT: UDP hole punch, A hears B" "got $PUB_NET.2:5000" "$ra"
    expect "cone NAT: UDP hole punch, B hears A" "got $PUB_NET.1:5000" "$rb"
  fi
  rm -rf "$T"
  [ $FAILED = 0 ] && echo "all checks passed (NAT=$NAT)" || { echo "some checks FAILED"; return 1; }
}

case "${1:-}" in
  up) up ;;
  down) down; echo "natlab down" ;;
  check) check ;;
  counters) counters ;;
  exec) shift; n=$1; shift; ns "$n" "$@" ;;
  demo) up; rc=0; check || rc=1; down; echo "natlab down"; exit $rc ;;
  *) sed -n '2,61p' "$0"; exit 2 ;;
esac
