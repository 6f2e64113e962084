#!/usr/bin/env bash
# Seconds per attributed token of a language model's continuation, candle-explain against
# LXT (AttnLRP, CP-LRP), Captum (LLMGradientAttribution: IG-32, Gradient x Input;
# LLMAttribution: feature ablation) and inseq (IG-32, input x gradient), one session, same
# machine, same random GPT-2-small-shaped weights (benches/llm_make_model.py), a 256-token
# prompt. 32 forced targets; IG with 4 (each IG target is 32 passes: 32 targets would take
# an hour per Python tool here).
#   cargo build --release --example llm_speed && benches/llm_compare.sh [MODEL]
# Needs the venvs named in benches/llm_attribution.py. Writes JSON to assets/bench-llm/.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/bench-llm/gpt2-small}
[ -d "$model" ] || /work/venv/bin/python benches/llm_make_model.py
out=assets/bench-llm/$(basename "$model")
py=${PYTHON:-/work/venv/bin/python}
bin=target/release/examples/llm_speed
$bin --model "$model" --prompt-len 256 --targets 32 --methods attnlrp,cp-lrp,gradient-x-input,ablation > "$out-rust-32.json"
$bin --model "$model" --prompt-len 256 --targets 4 --methods integrated-gradients > "$out-rust-ig4.json"
$py benches/llm_attribution.py --model "$model" --prompt-len 256 --targets 32 --repeats 1 \
    --only lxt:attnlrp,lxt:cplrp,captum:gradient_x_activation,captum:feature_ablation,inseq:input_x_gradient > "$out-python-32.json"
$py benches/llm_attribution.py --model "$model" --prompt-len 256 --targets 4 --repeats 1 --ig-batch 8 \
    --only captum:integrated_gradients,inseq:integrated_gradients > "$out-python-ig4.json"
echo "wrote $out-{rust,python}-{32,ig4}.json"
