"""Joins the JSON lines of examples/gpu_compare (ours) and benches/gpu_captum.py (Captum)
into the markdown table of benches/README.md: explanations per second on each side and
their ratio (ours / Captum's at equal precision), bf16 against Captum's f32, and IG's
relative completeness error. Standard library only.

usage: python3 benches/gpu_table.py candle.jsonl captum.jsonl [--memory memory.json]
"""
import json
import os
import sys


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                prec = "tf32" if r.get("tf32") and r["dtype"] == "f32" else r["dtype"]
                rows[(r["case"], r["method"], prec)] = r
    return rows


def main(argv):
    ours, theirs = load(argv[1]), load(argv[2])
    memory = None
    if "--memory" in argv:
        p = argv[argv.index("--memory") + 1]
        if os.path.exists(p):
            memory = json.load(open(p))
    any_row = next(iter(theirs.values()), {})
    print(f"device: {any_row.get('gpu') or any_row.get('device')}, torch {any_row.get('torch')}, captum {any_row.get('captum')}")
    print()
    print("| case | method | precision | ours expl/s | Captum expl/s | ratio | bf16 vs Captum f32 | IG completeness (rel) ours / Captum |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(ours):
        case, method, prec = key
        o, t = ours[key], theirs.get(key)
        ratio = f"{o['explanations_per_s'] / t['explanations_per_s']:.2f}×" if t else "—"
        vs32 = ""
        if prec == "bf16" and (case, method, "f32") in theirs:
            vs32 = f"{o['explanations_per_s'] / theirs[(case, method, 'f32')]['explanations_per_s']:.2f}×"
        comp = ""
        if o.get("completeness_rel") is not None:
            tc = t.get("completeness_rel") if t else None
            comp = f"{o['completeness_rel']:.1e} / " + (f"{tc:.1e}" if tc is not None else "—")
        tv = f"{t['explanations_per_s']:.1f}" if t else "—"
        print(f"| {case} (b{o['batch']}) | {method} | {prec} | {o['explanations_per_s']:.1f} | {tv} | {ratio} | {vs32} | {comp} |")
    if memory:
        cap = theirs.get(("bert_base", "ig50", "f32"), {}).get("peak_mib")
        print()
        print(f"IG-50 on BERT-base (f32): ours {memory['used_mib']} MiB above idle (nvidia-smi peak, budget {memory['budget_mib']} MiB); Captum {cap} MiB (max_memory_allocated).")


if __name__ == "__main__":
    main(sys.argv)
