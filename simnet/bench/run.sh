#!/usr/bin/env bash
# The simnet benchmark (docs/BENCHMARKS.md, "Simulated testnets"): wall time,
# peak memory and the protocol's figures for `simnet run` at 100, 1,000 and
# 10,000 nodes with 1,000 jobs, seed 1. Prints one Markdown row per size.
#
#   cargo build --release -p simnet && simnet/bench/run.sh [path/to/simnet]
#
# Needs GNU time (/usr/bin/time) and python3 (to read the JSON report).
set -euo pipefail
bin=${1:-${CARGO_TARGET_DIR:-target}/release/simnet}
sizes=${SIZES:-"100 1000 10000"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| nodes | wall | peak RSS | events | jobs completed | submit -> first award p99 (simulated) | submit -> completed p99 (simulated) | messages per node per job | bids per job (mean, max) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in $sizes; do
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" run --nodes "$n" --jobs 1000 --seed 1 \
    --report "$tmp/r.json" >/dev/null
  read -r wall rss_kb <"$tmp/time"
  python3 - "$tmp/r.json" "$n" "$wall" "$rss_kb" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, wall, rss = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
mb = rss / 1024
print(f"| {n:,} | {wall:.1f} s | {mb:.0f} MB | {r['events']/1e6:.2f} M | "
      f"{r['success_rate']*100:.1f}% | {r['award_latency_ms']['p99']/1000:.2f} s | "
      f"{r['latency_ms']['p99']/1000:.1f} s | {r['messages_per_node_per_job']:.1f} | "
      f"{r['bids_per_job']['mean']:.1f}, {r['bids_per_job']['max']} |")
PY
done
