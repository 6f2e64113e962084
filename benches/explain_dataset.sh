#!/usr/bin/env bash
# Throughput of dataset jobs on one machine: explain-dataset over the 10,000 Fashion-MNIST
# test images with Saliency and IG-50 (fashion-resnet), as 1, 2 and 4 local processes
# (--processes N: each task gets its share of the cores), and the merge time.
#   cargo build --release --bin candle-explain && benches/explain_dataset.sh [LIMIT]
# Prints a Markdown table (benches/README.md, "Dataset jobs").
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/candle-explain
limit=${1:-10000}
data=$(scripts/fetch-assets.sh fashion-mnist >/dev/null && echo assets/fashion-mnist/t10k-images-idx3-ubyte.gz)
out=$(mktemp -d)
echo "| method | processes | images | wall s | images/s | merge s |"
echo "|---|---|---|---|---|---|"
for method in saliency integrated-gradients; do
  for n in 1 2 4; do
    dir="$out/$method-$n"
    t0=$(date +%s.%N)
    "$bin" explain-dataset --model fashion-resnet --data "$data" --methods "$method" --steps 50 \
      --limit "$limit" --shard-size 250 --processes "$n" --out "$dir" >/dev/null 2>&1
    t1=$(date +%s.%N)
    merge=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['merge_seconds'], 3))" "$dir/merged.json")
    python3 -c "import sys; w=float(sys.argv[4])-float(sys.argv[3]); print(f'| {sys.argv[1]} | {sys.argv[2]} | {sys.argv[5]} | {w:.1f} | {int(sys.argv[5])/w:.1f} | {sys.argv[6]} |')" \
      "$method" "$n" "$t0" "$t1" "$limit" "$merge"
  done
done
rm -rf "$out"
