"""Exact Shapley-value goldens (Captum's LLMAttribution game) for the six tiny
decoder checkpoints written by scripts/golden/llm_families.py.

For each variant in crates/models/tests/data/hf/{gpt2,llama,llama3,mistral,qwen2,qwen3}/
this script loads the folder (AutoModelForCausalLM, attn_implementation="eager",
float32, eval; AutoTokenizer), reads prompt_ids, captum_target_ids (y, K = 8),
captum_feature_ids (F tokens), captum_baseline_id (b) from that folder's
golden.safetensors and the skip list (captum_skip_tokens: [BOS] for
llama/llama3/mistral, none otherwise) and the prompt string from golden.json,
and writes shapley.safetensors into the same folder (float32):

THE GAME (the one Captum's LLMAttribution plays with TextTokenInput(PROMPT,
tokenizer, baselines=b, skip_tokens=skip), target=y, use_cached_outputs=False,
attr_target "log_prob", forward_in_tokens=True): the players are the F prompt
tokens (the BOS, when present, is never replaced); a coalition S keeps its
tokens and replaces every other feature token by b, giving prompt'(S);
    v_k(S) = log_softmax(model(input_ids=cat(prompt'(S), y[:k])).logits[0,-1])[y[k]]
(targets forced, y_<k never replaced, one full forward per step, no KV cache).
Shapley value of player i for target k:
    phi_k[i] = sum_{S not containing i} |S|!(F-|S|-1)!/F! (v_k(S+i) - v_k(S)).

    direct_shapley_token_attr (K,F)  phi_k[i] (row k = target k, column =
                                     feature) from this script's own torch
                                     implementation: all 2^F coalitions, each
                                     v_k(S) one forward (batched over coalitions),
                                     the weighted sum above in float64.
    direct_shapley_seq_attr   (F,)   the same for v(S) = sum_k v_k(S)
                                     (= token_attr.sum(0), asserted)

IMPORTANT: the full game's values are NOT produced by Captum's ShapleyValues.  The
golden prompts have F = 12 (gpt2, llama3, qwen2, qwen3) or 13 (llama, mistral)
features, and captum.attr.ShapleyValues enumerates all F! orderings
(itertools.permutations; 12! = 4.8e8, 13! = 6.2e9 orderings, each with F
perturbed inputs, each of K forwards): infeasible.  So direct_shapley_* hold the
exact values of Captum's game computed by the direct implementation.  Captum's ShapleyValues itself is run, through
LLMAttribution with the same TextTokenInput, target and use_cached_outputs=False,
on a GROUPED version of the same game (feature_mask passed through to
ShapleyValues; G = 6 players, feature j in group j*G//F, so every token is still
replaced and 6! = 720 orderings are feasible), and the direct implementation of
the grouped game must equal it (max abs diff <= 1e-5 * max(1, max |value|));
those real Captum outputs are stored too:
    captum_shapley_group_mask          int64 (F,)  the group of each feature
    captum_shapley_grouped_token_attr  (K,F)  Captum's result.token_attr (every
                                       feature carries its group's value)
    captum_shapley_grouped_seq_attr    (F,)   Captum's result.seq_attr
Further assertions: v_k(all kept) = golden captum_target_logprobs (1e-5);
v_k(all kept) - v_k(all but feature f kept) = golden captum_ablation_token_attr
(Captum's FeatureAblation on the full game, 2e-5);
efficiency (completeness) token_attr.sum(1) = v_k(all kept) - v_k(none kept) for
the full and the grouped game; direct seq_attr = token_attr.sum(0).  Captum's
grouped seq_attr is compared with the direct grouped seq values to 1e-5 * max |sum_k
v_k(S)| (its float32 sums of 8 log-probs, |sum| ~ 50, over 720 orderings drift by
~1e-4).

Captum 0.9 workarounds (as in llm_families.py): use_cached_outputs=False (the
cached path is broken with transformers 5), and result.output_tokens built with
convert_ids_to_tokens (Captum's helper raises IndexError on a lone UTF-8 byte).

Metadata (safetensors __metadata__, sorted): generator, torch, captum,
transformers, safetensors, python versions, captum_shapley_source (where the full
game's values come from).

Run from the repository root (CPU, one thread, deterministic; a few minutes):

    /work/venv/bin/python scripts/golden/llm_shapley.py

(generated with torch 2.15.0, captum 0.9.0, transformers 5.24.0, safetensors 0.8.0).
"""

import json
import math
import os
import sys
import warnings

os.environ["TOKENIZERS_PARALLELISM"] = "false"
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llm_families import ROOT, VARIANTS, save_golden  # noqa: E402

GROUPS = 6
CHUNK = 512


def shapley_from_values(v):
    """v: (2^P, K) float64, v[mask] = value of the coalition whose bit i is player i.
    Returns (K, P) exact Shapley values."""
    n_masks, _ = v.shape
    P = n_masks.bit_length() - 1
    masks = torch.arange(n_masks)
    size = torch.tensor([bin(m).count("1") for m in range(n_masks)])
    w = torch.tensor([math.factorial(s) * math.factorial(P - s - 1) / math.factorial(P)
                      if s < P else 0.0 for s in range(P + 1)], dtype=torch.float64)
    phi = torch.zeros(v.shape[1], P, dtype=torch.float64)
    for i in range(P):
        S = masks[(masks >> i) & 1 == 0]
        phi[:, i] = (w[size[S]].unsqueeze(1) * (v[S | (1 << i)] - v[S])).sum(0)
    return phi


@torch.no_grad()
def coalition_values(model, prompt_ids, feat_pos, groups, baseline, target):
    """v_k(S) (2^P, K) for every coalition S of the P players; groups[j] = the player
    owning feature position feat_pos[j]."""
    P, K = max(groups) + 1, target.shape[0]
    keep = torch.tensor([[(m >> g) & 1 for g in range(P)] for m in range(2 ** P)], dtype=torch.bool)
    ids = prompt_ids.repeat(2 ** P, 1)
    for j, t in enumerate(feat_pos):
        ids[:, t] = torch.where(keep[:, groups[j]], prompt_ids[0, t], baseline)
    v = torch.zeros(2 ** P, K, dtype=torch.float64)
    for k in range(K):
        for c in range(0, 2 ** P, CHUNK):
            x = torch.cat([ids[c:c + CHUNK], target[:k].expand(ids[c:c + CHUNK].shape[0], k)], 1)
            lp = torch.log_softmax(model(input_ids=x, use_cache=False).logits[:, -1], -1)
            v[c:c + CHUNK, k] = lp[:, target[k]].double()
    return v


def main():
    import captum
    import captum.attr._core.llm_attr as captum_llm_attr
    import safetensors
    import transformers
    from captum.attr import LLMAttribution, ShapleyValues, TextTokenInput
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    captum_llm_attr._convert_ids_to_pretty_tokens = (
        lambda ids, tokenizer: [str(t) for t in tokenizer.convert_ids_to_tokens(ids.tolist())])
    warnings.filterwarnings("ignore", message=".*computationally expensive.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    meta = {"generator": "scripts/golden/llm_shapley.py", "torch": torch.__version__,
            "captum": captum.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "python": sys.version.split()[0],
            "captum_shapley_source": "direct exact enumeration of all 2^F coalitions "
            "(Captum ShapleyValues needs F! orderings, infeasible for F=12/13); Captum "
            "ShapleyValues checked on the 6-group game (captum_shapley_grouped_*)"}

    for name in VARIANTS:
        folder = os.path.join(ROOT, name)
        gold = load_file(os.path.join(folder, "golden.safetensors"))
        info = json.load(open(os.path.join(folder, "golden.json")))
        prompt_ids, target = gold["prompt_ids"], gold["captum_target_ids"]
        baseline = int(gold["captum_baseline_id"][0])
        skip = info["captum_skip_tokens"]
        T, K = prompt_ids.shape[1], target.shape[0]
        feat_pos = list(range(1, T)) if skip else list(range(T))
        F = len(feat_pos)
        assert torch.equal(prompt_ids[0, feat_pos], gold["captum_feature_ids"]), name
        model = AutoModelForCausalLM.from_pretrained(
            folder, attn_implementation="eager", dtype=torch.float32).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        tok = AutoTokenizer.from_pretrained(folder)
        inp = TextTokenInput(info["prompt"], tok, baselines=baseline, skip_tokens=skip)
        assert torch.equal(inp.inp_tensor, prompt_ids) and inp.n_itp_features == F, name

        # --- exact Shapley of the full game (direct) ------------------------------
        v = coalition_values(model, prompt_ids, feat_pos, list(range(F)), baseline, target)
        assert (v[-1] - gold["captum_target_logprobs"].double()).abs().max() < 1e-5, name
        full = 2 ** F - 1  # v_k(all kept) - v_k(all but f kept) = golden FeatureAblation
        fa = torch.stack([v[full] - v[full ^ (1 << f)] for f in range(F)], 1)
        assert (fa - gold["captum_ablation_token_attr"].double()).abs().max() < 2e-5, name
        direct = shapley_from_values(v)
        direct_seq = shapley_from_values(v.sum(1, keepdim=True))[0]
        assert (direct.sum(1) - (v[-1] - v[0])).abs().max() < 1e-9, name
        assert (direct_seq - direct.sum(0)).abs().max() < 1e-9, name

        # --- Captum ShapleyValues on the grouped game vs the direct grouped game ----
        group = torch.tensor([j * GROUPS // F for j in range(F)])
        r = LLMAttribution(ShapleyValues(model), tok).attribute(
            inp, target=target, use_cached_outputs=False, feature_mask=group.unsqueeze(0))
        cg_tok, cg_seq = r.token_attr.detach().float(), r.seq_attr.detach().float()
        assert cg_tok.shape == (K, F) and cg_seq.shape == (F,), name
        vg = coalition_values(model, prompt_ids, feat_pos, group.tolist(), baseline, target)
        dg = shapley_from_values(vg)[:, group]
        scale = max(1.0, dg.abs().max().item())
        d_grouped = (cg_tok.double() - dg).abs().max().item()
        assert d_grouped <= 1e-5 * scale, (name, d_grouped)
        first = [group.tolist().index(g) for g in range(GROUPS)]
        assert (cg_tok[:, first].double().sum(1) - (vg[-1] - vg[0])).abs().max() < 1e-5 * scale
        # seq: Captum sums K log-probs (|sum| ~ 50) in float32 over 720 orderings
        dg_seq = shapley_from_values(vg.sum(1, keepdim=True))[0, group]
        d_grouped_seq = (cg_seq.double() - dg_seq).abs().max().item()
        assert d_grouped_seq <= 1e-5 * vg.sum(1).abs().max().item(), (name, d_grouped_seq)

        out = {"direct_shapley_token_attr": direct.float().contiguous(),
               "direct_shapley_seq_attr": direct_seq.float().contiguous(),
               "captum_shapley_group_mask": group.to(torch.int64),
               "captum_shapley_grouped_token_attr": cg_tok.contiguous(),
               "captum_shapley_grouped_seq_attr": cg_seq.contiguous()}
        save_golden(out, os.path.join(folder, "shapley.safetensors"), meta)
        print(f"{name}: K={K} F={F} token_attr {tuple(direct.shape)} max|phi| "
              f"{direct.abs().max().item():.4f}  completeness gap "
              f"{(direct.sum(1) - (v[-1] - v[0])).abs().max().item():.1e}  "
              f"grouped |captum - direct| token {d_grouped:.2e} seq {d_grouped_seq:.2e}",
              flush=True)


if __name__ == "__main__":
    main()
