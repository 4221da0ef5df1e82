#!/usr/bin/env bash
# Calibration of simnet's gossip model (issue 7, item 2): real libp2p
# gossipsub swarms of 50-300 nodes in one process (node/benches/gossip.rs,
# which also runs simnet's model at the same sizes), then the simnet CLI at
# the same sizes for the protocol's view of the same traffic.
#
#   simnet/bench/calibrate.sh                 # release build (cargo bench)
#   FAST=1 simnet/bench/calibrate.sh          # dev build, libp2p and the node optimised
#   WRITE=1 SIZES=50,100,300 ANNOUNCEMENTS=20 simnet/bench/calibrate.sh
#
# WRITE=1 puts the table in docs/BENCHMARKS.md (section `gossip`). Needs
# python3 (to read simnet's JSON report). The swarms share the machine's
# cores: times are CPU-bound upper bounds, counts are not.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=${SIZES:-50,100,300}
bench_args=(--nodes "$sizes" --announcements "${ANNOUNCEMENTS:-20}" --settle "${SETTLE:-20}")
[[ -n "${WRITE:-}" ]] && bench_args+=(--write)

if [[ -n "${FAST:-}" ]]; then
  # The crates on the gossip path at opt-level 2, the rest (wasmtime,
  # iroh) as the dev profile has them: minutes to build instead of a
  # full release build.
  opts=()
  for p in libp2p-gossipsub libp2p-swarm libp2p-core libp2p-noise snow blake2 yamux \
    libp2p-yamux libp2p-kad libp2p-tcp libp2p-identify libp2p-request-response \
    libp2p-identity quick-protobuf quick-protobuf-codec asynchronous-codec \
    multistream-select node protocol simnet; do
    opts+=(--config "profile.dev.package.$p.opt-level=2")
  done
  cargo bench -q -p node --bench gossip --profile dev "${opts[@]}" -- "${bench_args[@]}"
  cargo build -q -p simnet "${opts[@]}"
  simnet=${CARGO_TARGET_DIR:-target}/debug/simnet
else
  cargo bench -q -p node --bench gossip -- "${bench_args[@]}"
  cargo build -q --release -p simnet
  simnet=${CARGO_TARGET_DIR:-target}/release/simnet
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo
echo "simnet CLI, 200 jobs, seed 1, no loss, 50-75 ms links (re-announcements included):"
echo "| nodes | gossip receptions per node per job | messages per node per job | submit -> first award p99 (simulated) |"
echo "| --- | --- | --- | --- |"
for n in ${sizes//,/ }; do
  "$simnet" run --nodes "$n" --jobs 200 --seed 1 --report "$tmp/r.json" >/dev/null
  python3 - "$tmp/r.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2]); jobs = r['config']['jobs']
print(f"| {n} | {r['gossip_receptions'] / n / jobs:.2f} | "
      f"{r['messages_per_node_per_job']:.1f} | {r['award_latency_ms']['p99']} ms |")
PY
done
