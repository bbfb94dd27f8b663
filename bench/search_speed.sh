#!/usr/bin/env bash
# Speed of the `cli default` search on one core (release build). Prints a table; record the
# figures in BENCHMARKS.md. Usage: bench/search_speed.sh [repeat]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
repeat="${1:-10}"
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
"${pin[@]}" target/release/aicfg bench search --repeat "$repeat"
# Whole-command wall time of the README's main job, cold process each time.
start=$(date +%s.%N)
for _ in $(seq "$repeat"); do
  "${pin[@]}" target/release/aicfg cli default --model QWEN3_32B --total_gpus 32 --system h200_sxm >/dev/null 2>&1
done
end=$(date +%s.%N)
echo "cli default QWEN3_32B / 32 x h200_sxm, whole process: $(echo "($end - $start) * 1000 / $repeat" | bc -l | xargs printf '%.1f') ms per run"
