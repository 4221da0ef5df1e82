#!/usr/bin/env bash
# Fuzz skrei's parsers and decoders (issue 12 §8). See fuzz/README.md.
#
#   fuzz/run.sh                 every target, one after the other
#   fuzz/run.sh gossip domain   only these
#
# Each target runs until it has done RUNS executions (default 2,000,000) or
# its coverage (libFuzzer's cov and ft) has not grown for PLATEAU seconds
# (default 600), whichever comes first; then its corpus is minimised
# (`cargo fuzz cmin`) into fuzz/corpus/<target>/. One fuzzing process at a
# time, one job, one worker: the machine is shared.
#
# A crash leaves its input in fuzz/artifacts/<target>/ and stops the run:
# fix it, copy the input to fuzz/regressions/<target>/, add a unit test
# beside the code, rerun. The summary line of every run is appended to
# fuzz/logs/summary.tsv (target, executions, seconds, cov, ft, corpus files,
# result: "clean (limit)" when RUNS or MAX_TIME was reached, "clean
# (plateau)" when coverage stalled), the full libFuzzer output to fuzz/logs/<target>.log.
#
# MODE=cmin only minimises the corpora (no seeds, no fuzzing).
#
# Environment: RUNS, PLATEAU, MAX_TIME (seconds, default none: a longer
# soak with RUNS=-1 MAX_TIME=3600), MAX_LEN (libFuzzer -max_len, default 4096;
# the wire targets get 16384), FUZZ_TARGET_DIR (default
# $HOME/.cache/skrei-fuzz-target), SEED=0 to skip writing the seeds.
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir=$(pwd)
repo=$(cd .. && pwd)

RUNS=${RUNS:-2000000}
PLATEAU=${PLATEAU:-600}
MAX_TIME=${MAX_TIME:-0}
TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/skrei-fuzz-target}
mkdir -p logs artifacts corpus

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^skrei-fuzz$')
targets=${*:-$all_targets}

fuzz() { cargo +nightly fuzz "$@"; }

# Seeds: the repository's examples and golden messages, written into each
# corpus (cmin drops those that add nothing).
MODE=${MODE:-fuzz}
if [ "$MODE" = fuzz ] && [ "${SEED:-1}" != 0 ]; then
    # shellcheck disable=SC2086
    (cd "$repo" && cargo run -q -p fuzz-entries --example seeds -- fuzz/corpus $targets)
fi

echo "building the targets (nightly, no sanitizer)"
fuzz build -s none --target-dir "$TARGET_DIR"
bin_dir=$TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

for target in $targets; do
    case $target in
        gossip | direct | signed | job_wire) max_len=${MAX_LEN:-16384} ;;
        *) max_len=${MAX_LEN:-4096} ;;
    esac
    log=logs/$target.log
    if [ "$MODE" = cmin ]; then
        start=$(date +%s) end=$start execs=0 cov="" ft="" result="clean (cmin only)"
        : >"$log"
    else
        dict=dicts/$target.dict
        dict_arg=()
        [ -f "$dict" ] && dict_arg=("-dict=$fuzz_dir/$dict")
        mkdir -p "corpus/$target" "artifacts/$target"
        echo "== $target: up to $RUNS executions, or until coverage stalls for ${PLATEAU}s"
        start=$(date +%s)
        # The binary itself rather than `cargo fuzz run`, so that the process
        # watched (and interrupted at a plateau) is the fuzzer. Without -jobs,
        # libFuzzer fuzzes in this one process with one worker (-jobs=1
        # -workers=1 would do the same in a child process logging elsewhere).
        "$bin_dir/$target" -runs="$RUNS" -max_total_time="$MAX_TIME" -max_len="$max_len" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$fuzz_dir/artifacts/$target/" "${dict_arg[@]}" \
            "corpus/$target" >"$log" 2>&1 &
        pid=$!

        # Watch the log: stop the run once cov and ft have not grown for PLATEAU
        # seconds.
        last_cov="" last_growth=$start reason="limit"
        while kill -0 "$pid" 2>/dev/null; do
            sleep 10
            cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
            now=$(date +%s)
            if [ "$cov" != "$last_cov" ]; then
                last_cov=$cov last_growth=$now
            elif [ $((now - last_growth)) -ge "$PLATEAU" ]; then
                reason="plateau"
                kill -INT "$pid" 2>/dev/null || true
                break
            fi
        done
        status=0
        wait "$pid" || status=$?
        end=$(date +%s)

        execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' ||
            grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        covft=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
        cov=$(echo "$covft" | awk '{print $2}')
        ft=$(echo "$covft" | awk '{print $4}')
        if ls "artifacts/$target"/crash-* "artifacts/$target"/leak-* "artifacts/$target"/timeout-* \
            "artifacts/$target"/oom-* >/dev/null 2>&1; then
            result="FOUND: $(ls "artifacts/$target" | tr '\n' ' ')"
        elif [ "$status" != 0 ] && [ "$reason" != plateau ]; then
            result="exit $status"
        else
            result="clean ($reason)"
        fi
    fi

    # Minimise: a small set of inputs that covers every edge the corpus
    # covers (cov). Edges only, not libFuzzer's hit-count features (ft), and
    # a set cover rather than a greedy pass: about a quarter of the files of
    # a plain cmin, for the same edges; a fuzzer run rebuilds ft from it.
    if [[ $result == clean* ]]; then
        fuzz cmin -s none --target-dir "$TARGET_DIR" "$target" "corpus/$target" -- \
            -max_len="$max_len" -set_cover_merge=1 -use_counters=0 -use_value_profile=0 \
            >>"$log" 2>&1
    fi
    files=$(find "corpus/$target" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$execs" "$((end - start))" "$cov" "$ft" \
        "$files" "$result" | tee -a logs/summary.tsv
    if [[ $result != clean* ]]; then
        echo "see $log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
