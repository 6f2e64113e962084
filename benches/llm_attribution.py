"""Python twin of the LLM attribution speed benchmark: seconds per attributed
target token for Captum, LXT and inseq on a random-weight causal LM.

Setting.  A model folder written by benches/llm_make_model.py (GPT-2-small or
Llama-shaped, float32, eager attention), loaded with use_cache = False (no
method here reuses a KV cache; every forward is a full forward) and every
parameter's requires_grad = False (only input/embedding gradients are ever
needed).  A fixed prompt of P token ids (default 256) drawn with
torch.Generator().manual_seed(0), torch.randint(10, V - 10, (P,)) and a FORCED
continuation of K ids (default 32) drawn the same way with seed 1 (V = the
model's vocab_size); --dump-ids FILE writes both as JSON for the Rust side.
No real tokenizer: where a tool insists on text, a trivial word-level
PreTrainedTokenizerFast is built on the fly with the vocabulary {"t<i>": i}
and a whitespace split, so "t5 t17 ..." encodes to exactly [5, 17, ...] and
back (no BOS is added; the special tokens are named "<unk>" = id 0, "<bos>",
"<eos>" (pad = eos) at the config's ids, ids that no prompt or continuation id
ever is).  Target k (0 <= k < K) is predicted from the input
prompt ++ cont[:k]; its "score" is said per method below.

Timed methods (tool:method; default: all except captum:feature_ablation_by_tokens):

  captum:integrated_gradients   Captum LLMGradientAttribution(
        LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
        .attribute(TextTokenInput(prompt_text, tok, baselines=0),
                   target=cont (tensor: forced), n_steps=32,
                   internal_batch_size=--ig-batch (default None: all 32 steps in
                   one batch)), method "gausslegendre" (Captum's default).
        Per target k: ONE forward + backward of a batch of 32 sequences of
        length P+k (the 32 Gauss-Legendre points between the baseline and the
        input embeddings), score s_k = log_softmax(logits[-1])[cont[k]];
        baseline = the embedding of token id 0 at the P prompt positions, the
        forced cont[:k] kept at their actual embeddings.  Result (K, P).
  captum:gradient_x_activation  LLMGradientAttribution(LayerGradientXActivation(
        model, embeddings)).attribute(same input, target=cont): per target one
        forward + backward of length P+k, (e * ds_k/de).sum(hidden).  (K, P).
  captum:feature_ablation       LLMAttribution(FeatureAblation(model), tok)
        .attribute(inp(baselines=0), target=cont, use_cached_outputs=False,
        forward_in_tokens=False): every prompt token replaced in turn by id 0,
        and for the unperturbed input and each of the P perturbations ONE
        teacher-forced forward of prompt' ++ cont (length P+K) gives all K
        log-probs at once: P+1 forwards in all, no backward.  (K, P) +
        the sequence row.  sec/token = total / K.
  captum:feature_ablation_by_tokens  the same with Captum's default
        forward_in_tokens=True (still use_cached_outputs=False): the K targets
        are scored one forward each on prompt' ++ cont[:k], so (P+1)*K forwards.
        Same numbers, ~K times the cost.  Not in the default set.
        (Captum's default use_cached_outputs=True is not offered: with
        transformers 5 its cache path is broken, see
        scripts/golden/llm_families.py.)
  lxt:attnlrp                   LXT 2.1 AttnLRP (lxt.efficient monkey_patch of
        the modeling module with lxt's attnLRP map, as in LXT's own examples),
        run in the LXT venv (transformers 4.52.4): per target k,
        e = embeddings(prompt ++ cont[:k]).requires_grad_(); logits =
        model(inputs_embeds=e, use_cache=False).logits (all P+k positions, as
        LXT's examples do); logits[0, -1, cont[k]].backward();
        relevance = (e * e.grad).sum(-1) over all P+k positions.  One forward +
        one backward per target; the score is the target's LOGIT (LXT explains
        logits), not its log-probability.
  lxt:cplrp                     the same with lxt's cp_LRP maps (CP-LRP).
  inseq:integrated_gradients    inseq 0.7.1 (own venv: transformers 4.57.3,
        torch 2.6.0, captum 0.9.0) inseq.load_model(model, method, tokenizer=tok)
        .attribute(prompt_text, generated_texts=prompt_text + " " + cont_text,
                   n_steps=32, internal_batch_size=--ig-batch, show_progress=False,
                   attributed_fn="probability", logprob=True (--inseq-score)):
        forced decoding; per target k Captum's IntegratedGradients on
        inputs_embeds of prompt ++ cont[:k], ONE forward + backward of a batch of
        32 (Gauss-Legendre), score log p(cont[k]); inseq's baseline is the unk
        ("<unk>" = id 0) embedding at EVERY position, the forced cont[:k] included
        (unlike Captum's LLM wrapper, which holds cont[:k] fixed), and it
        attributes to all P+k positions.  Plus inseq's per-step bookkeeping
        (tokenisation, output objects, aggregation).
  inseq:input_x_gradient        the same loop, Captum InputXGradient: one
        forward + backward of length P+k per target.
  inseq:saliency                the same, Captum Saliency (|gradient|).
  inseq:attention               inseq "attention": a final-step method, ONE
        forward of the whole P+K sequence with output_attentions, the attention
        weights sliced per step (no backward); sec/token = that / K.

Timing: for each tool:method a fresh child process (the right venv's Python)
loads the model, sets torch.set_num_threads(--threads), runs the whole K-target
attribution once as warm-up, then --repeats times; sec_per_token = median of
the repeats' wall time / K.  Model loading, tokenizer building and
inseq.load_model are outside the timing.  fwd_bwd_seconds (reference): the
median wall time of ONE forward of the full P+K sequence from inputs_embeds
(requires_grad) plus one backward from log_softmax(logits[-1])[cont[K-1]] to
the embeddings, in the default (Captum) venv; each child also reports its own
(its torch version may differ) under details.

Output: one JSON object on stdout,
    {"captum": {"integrated_gradients": s, ...}, "lxt": {...}, "inseq": {...},
     "fwd_bwd_seconds": s, "P": 256, "K": 32, "threads": N, "repeats": R,
     "model": DIR, "versions": {...per venv...}, "details": {...}, "errors": {...}}
Progress goes to stderr.  --check (tiny sizes only) additionally verifies each
result: Captum's token_attr and inseq's gradient-method columns against direct
torch re-implementations of the definitions above (relative error < 1e-3; at
tiny size they agree bit for bit), inseq's target ids and number of steps, and
for LXT that the patched forward equals the unpatched one and that each target
logit is the one explained (CP-LRP on the bias-free Llama then conserves the
logit to ~1e-6).

Venvs (override with the environment variables):
    CAPTUM_PYTHON  default /work/venv/bin/python      torch 2.x, transformers 5, captum 0.9
    LXT_PYTHON     default /work/venv-lxt/bin/python  torch 2.6.0, transformers 4.52.4, lxt 2.1
    INSEQ_PYTHON   default /work/venv-inseq/bin/python torch 2.6.0, transformers 4.57.3,
                   captum 0.9.0, inseq 0.7.1; made with
        python3 -m venv /work/venv-inseq
        /work/venv-inseq/bin/pip install torch==2.6.0 "transformers[sentencepiece,tokenizers]==4.57.3" \\
            captum==0.9.0 safetensors numpy
        /work/venv-inseq/bin/pip install inseq==0.7.1 transformers==4.57.3 torch==2.6.0 captum==0.9.0

Run (repo root):
    /work/venv/bin/python benches/llm_make_model.py
    /work/venv/bin/python benches/llm_attribution.py --model assets/bench-llm/gpt2-small \\
        > gpt2-small.json
    /work/venv/bin/python benches/llm_attribution.py --model assets/bench-llm/llama-small \\
        > llama-small.json
Tiny correctness run:
    /work/venv/bin/python benches/llm_make_model.py --tiny --out /tmp/bench-llm
    /work/venv/bin/python benches/llm_attribution.py --model /tmp/bench-llm/gpt2-tiny \\
        --prompt-len 16 --targets 4 --repeats 1 --check
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PYTHONS = {
    "captum": os.environ.get("CAPTUM_PYTHON", "/work/venv/bin/python"),
    "lxt": os.environ.get("LXT_PYTHON", "/work/venv-lxt/bin/python"),
    "inseq": os.environ.get("INSEQ_PYTHON", "/work/venv-inseq/bin/python"),
}
METHODS = {
    "captum": ["integrated_gradients", "gradient_x_activation", "feature_ablation",
               "feature_ablation_by_tokens"],
    "lxt": ["attnlrp", "cplrp"],
    "inseq": ["integrated_gradients", "input_x_gradient", "saliency", "attention"],
}
NOT_DEFAULT = {"captum:feature_ablation_by_tokens"}
IG_STEPS = 32


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# =========================================================================== shared (child side)
def load_model(folder):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    transformers.logging.set_verbosity_error()
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    cfg = AutoConfig.from_pretrained(folder)
    raw = json.load(open(os.path.join(folder, "config.json")))
    if major < 5 and "rope_parameters" in raw:  # transformers 5 spelling: 4.x ignores it
        rp = dict(raw["rope_parameters"])
        cfg.rope_theta = rp.pop("rope_theta")
        cfg.rope_scaling = None if rp.get("rope_type", "default") == "default" else rp
    kw = {"dtype": torch.float32} if (major, minor) >= (4, 56) else {"torch_dtype": torch.float32}
    model = AutoModelForCausalLM.from_pretrained(folder, config=cfg, attn_implementation="eager",
                                                 **kw)
    model.eval()
    model.config.use_cache = False
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def make_ids(vocab, P, K):
    import torch
    prompt = torch.randint(10, vocab - 10, (P,), generator=torch.Generator().manual_seed(0))
    cont = torch.randint(10, vocab - 10, (K,), generator=torch.Generator().manual_seed(1))
    return prompt, cont


def make_tokenizer(model):
    """Word-level tokenizer 't<i>' <-> i over the model's whole vocabulary.  The
    special tokens get names that cannot occur inside a 't<i>' word ("<unk>" = 0,
    "<bos>", "<eos>" or "<bos_eos>" at the config's ids), because a fast
    tokenizer matches special tokens anywhere in the text ("t1" would split
    "t18174")."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    cfg = model.config
    V = cfg.vocab_size
    eos = cfg.eos_token_id[0] if isinstance(cfg.eos_token_id, list) else cfg.eos_token_id
    bos = cfg.bos_token_id if cfg.bos_token_id is not None else eos
    names = {0: "<unk>"}
    names[bos] = "<bos>" if bos != eos else "<bos_eos>"
    names[eos] = "<eos>" if bos != eos else "<bos_eos>"
    vocab = {names.get(i, f"t{i}"): i for i in range(V)}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token=names[bos],
                                  eos_token=names[eos], pad_token=names[eos],
                                  model_max_length=1 << 20)
    return tok


def ids_text(ids):
    return " ".join(f"t{int(i)}" for i in ids)


def fwd_bwd_seconds(model, prompt, cont, repeats):
    import torch
    ids = torch.cat([prompt, cont]).unsqueeze(0)
    emb = model.get_input_embeddings()

    def once():
        e = emb(ids).detach().requires_grad_(True)
        lo = model(inputs_embeds=e, use_cache=False).logits
        torch.log_softmax(lo[0, -1], -1)[cont[-1]].backward()
        return e.grad

    once()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def summarize(t):
    import torch
    t = t.detach().float()
    return {"shape": list(t.shape), "sum": float(t.sum()), "abs_max": float(t.abs().max()),
            "finite": bool(torch.isfinite(t).all())}


def rel_err(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-12))


# =========================================================================== Captum
def captum_runner(model, prompt, cont, method, a):
    import numpy as np
    import torch
    from captum.attr import (FeatureAblation, LayerGradientXActivation, LayerIntegratedGradients,
                             LLMAttribution, LLMGradientAttribution, TextTokenInput)
    tok = make_tokenizer(model)
    text = ids_text(prompt)
    inp = TextTokenInput(text, tok, baselines=0)
    assert torch.equal(inp.inp_tensor[0], prompt), "tokenizer does not round-trip the ids"
    assert tok.decode(prompt) == text
    emb = model.get_input_embeddings()
    P, K = prompt.shape[0], cont.shape[0]

    if method == "integrated_gradients":
        llm = LLMGradientAttribution(LayerIntegratedGradients(model, emb), tok)

        def run():
            with torch.enable_grad():
                return llm.attribute(inp, target=cont, n_steps=IG_STEPS,
                                     internal_batch_size=a.ig_batch)
    elif method == "gradient_x_activation":
        llm = LLMGradientAttribution(LayerGradientXActivation(model, emb), tok)

        def run():
            with torch.enable_grad():
                return llm.attribute(inp, target=cont)
    elif method in ("feature_ablation", "feature_ablation_by_tokens"):
        llm = LLMAttribution(FeatureAblation(model), tok)
        by_tokens = method == "feature_ablation_by_tokens"

        def run():
            return llm.attribute(inp, target=cont, use_cached_outputs=False,
                                 forward_in_tokens=by_tokens)
    else:
        raise ValueError(method)

    def check(res):
        tok_attr = res.token_attr.detach().float()
        assert tok_attr.shape == (K, P), tok_attr.shape

        def full_ids(k):
            return torch.cat([prompt, cont[:k]]).unsqueeze(0)

        def s_k(e, k):
            return torch.log_softmax(model(inputs_embeds=e).logits[:, -1], -1)[:, cont[k]]
        direct = torch.zeros(K, P)
        if method == "integrated_gradients":
            u, w = np.polynomial.legendre.leggauss(IG_STEPS)
            al = torch.tensor(0.5 * (u + 1), dtype=torch.float32).view(-1, 1, 1)
            wt = torch.tensor(0.5 * w, dtype=torch.float32).view(-1, 1, 1)
            for k in range(K):
                with torch.no_grad():
                    x = emb(full_ids(k))
                    bid = full_ids(k).clone()
                    bid[0, :P] = 0
                    b = emb(bid)
                path = (b + al * (x - b)).requires_grad_(True)
                with torch.enable_grad():
                    g, = torch.autograd.grad(s_k(path, k).sum(), path)
                direct[k] = ((x - b)[0] * (wt * g).sum(0)).sum(-1)[:P]
        elif method == "gradient_x_activation":
            for k in range(K):
                x = emb(full_ids(k)).detach().requires_grad_(True)
                with torch.enable_grad():
                    g, = torch.autograd.grad(s_k(x, k).sum(), x)
                direct[k] = (x * g)[0].sum(-1)[:P]
        else:
            with torch.no_grad():
                def forced(p):
                    lo = model(input_ids=torch.cat([p, cont]).unsqueeze(0)).logits
                    lp = torch.log_softmax(lo[0, P - 1:P - 1 + K], -1)
                    return lp[torch.arange(K), cont]
                lp0 = forced(prompt)
                for j in range(P):
                    p = prompt.clone()
                    p[j] = 0
                    direct[:, j] = lp0 - forced(p)
        e = rel_err(tok_attr, direct)
        assert e < 1e-3, (method, e)
        return {"max_rel_err_vs_direct": e}

    def summary(res):
        return {"token_attr": summarize(res.token_attr), "seq_attr": summarize(res.seq_attr)}
    return run, summary, check


# =========================================================================== LXT
def lxt_runner(model, prompt, cont, method, a):
    import torch
    from lxt.efficient import monkey_patch
    mt = model.config.model_type
    if mt == "gpt2":
        from transformers.models.gpt2 import modeling_gpt2 as modeling
        import lxt.efficient.models.gpt2 as maps
    elif mt == "llama":
        from transformers.models.llama import modeling_llama as modeling
        import lxt.efficient.models.llama as maps
    else:
        raise ValueError(f"no LXT map wired up here for model_type {mt}")
    pmap = {"attnlrp": maps.attnLRP, "cplrp": maps.cp_LRP}[method]
    emb = model.get_input_embeddings()
    P, K = prompt.shape[0], cont.shape[0]
    full = torch.cat([prompt, cont]).unsqueeze(0)
    with torch.no_grad():
        ref_logits = model(input_ids=full, use_cache=False).logits
    monkey_patch(modeling, pmap, verbose=False)

    def run():
        rel, logit = [], []
        for k in range(K):
            e = emb(full[:, :P + k]).detach().requires_grad_(True)
            lo = model(inputs_embeds=e, use_cache=False).logits
            y = lo[0, -1, cont[k]]
            y.backward()
            rel.append((e * e.grad)[0].sum(-1).detach())
            logit.append(y.detach())
        return rel, torch.stack(logit)

    def summary(res):
        rel, logit = res
        return {"relevance_first_target": summarize(rel[0]),
                "relevance_last_target": summarize(rel[-1]),
                "relevance_sums": [float(r.sum()) for r in rel],
                "target_logits": logit.tolist()}

    def check(res):
        rel, logit = res
        with torch.no_grad():
            pat = model(input_ids=full, use_cache=False).logits
        d = float((pat - ref_logits).abs().max())
        assert d < 1e-4, ("patched forward differs", d)
        want = ref_logits[0, P - 1 + torch.arange(K), cont]
        dl = float((logit - want).abs().max())
        assert dl < 1e-4, dl
        assert all(r.shape == (P + k,) and torch.isfinite(r).all() for k, r in enumerate(rel))
        return {"patched_vs_unpatched_logits_max_abs": d, "target_logit_max_abs": dl,
                "relevance_sum_over_logit": [float(r.sum() / l) for r, l in zip(rel, logit)]}
    return run, summary, check


# =========================================================================== inseq
def inseq_runner(model, prompt, cont, method, a):
    import inseq
    import torch
    tok = make_tokenizer(model)
    im = inseq.load_model(model, method, tokenizer=tok)
    P, K = prompt.shape[0], cont.shape[0]
    src = ids_text(prompt)
    gen = src + " " + ids_text(cont)
    kw = {"show_progress": False}
    if method != "attention":
        kw.update(attributed_fn="probability", logprob=(a.inseq_score == "logprob"))
    if method == "integrated_gradients":
        kw.update(n_steps=IG_STEPS, internal_batch_size=a.ig_batch)

    def run():
        return im.attribute(src, generated_texts=gen, **kw)

    def seq(out):
        return out.sequence_attributions[0]

    def summary(out):
        s = seq(out)
        r = {}
        for name in ("source_attributions", "target_attributions"):
            t = getattr(s, name, None)
            if t is not None:
                r[name] = summarize(torch.nan_to_num(t.float()))
        return r

    def check(out):
        s = seq(out)
        tgt = [t.id for t in s.target]
        assert tgt == prompt.tolist() + cont.tolist(), "inseq target ids differ"
        t = s.target_attributions
        assert t is not None and t.shape[0] == P + K and t.shape[1] == K, t.shape
        r = {"n_attributed_steps": int(t.shape[1]), "target_attributions_shape": list(t.shape),
             "attr_pos_start": s.attr_pos_start, "attr_pos_end": s.attr_pos_end}
        if method == "attention":
            return r
        # gradient methods: re-derive every column (P+k, H) directly
        import numpy as np
        emb = model.get_input_embeddings()
        full = torch.cat([prompt, cont]).unsqueeze(0)
        errs = []
        for k in range(K):
            with torch.no_grad():
                x = emb(full[:, :P + k])
                b = emb(torch.zeros_like(full[:, :P + k]))

            def score(e):
                lo = model(inputs_embeds=e).logits[:, -1]
                lo = lo.log_softmax(-1) if a.inseq_score == "logprob" else lo.softmax(-1)
                return lo[:, cont[k]]
            if method == "integrated_gradients":
                u, w = np.polynomial.legendre.leggauss(IG_STEPS)
                al = torch.tensor(0.5 * (u + 1), dtype=torch.float32).view(-1, 1, 1)
                wt = torch.tensor(0.5 * w, dtype=torch.float32).view(-1, 1, 1)
                path = (b + al * (x - b)).requires_grad_(True)
                with torch.enable_grad():
                    g, = torch.autograd.grad(score(path).sum(), path)
                direct = (x - b)[0] * (wt * g).sum(0)
            else:
                xe = x.clone().requires_grad_(True)
                with torch.enable_grad():
                    g, = torch.autograd.grad(score(xe).sum(), xe)
                direct = (x * g)[0] if method == "input_x_gradient" else g[0].abs()
            errs.append(rel_err(t[:P + k, k].float(), direct))
        r["max_rel_err_vs_direct"] = max(errs)
        assert r["max_rel_err_vs_direct"] < 1e-3, errs
        return r
    return run, summary, check


RUNNERS = {"captum": captum_runner, "lxt": lxt_runner, "inseq": inseq_runner}


def versions(tool):
    import importlib.metadata as md
    import torch
    import transformers
    v = {"python": sys.version.split()[0], "executable": sys.executable,
         "torch": torch.__version__, "transformers": transformers.__version__}
    for name in {"captum": ["captum"], "lxt": ["lxt"], "inseq": ["inseq", "captum"]}[tool]:
        try:
            v[name] = md.version(name)
        except md.PackageNotFoundError:
            v[name] = None
    return v


def child(a):
    import torch
    tool, method = a.child.split(":")
    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    prompt, cont = make_ids(model.config.vocab_size, a.prompt_len, a.targets)
    ref = fwd_bwd_seconds(model, prompt, cont, a.repeats)
    run, summary, check = RUNNERS[tool](model, prompt, cont, method, a)
    log(f"[{tool}:{method}] warm-up")
    t0 = time.perf_counter()
    res = run()
    warm = time.perf_counter() - t0
    ts = []
    for i in range(a.repeats):
        t0 = time.perf_counter()
        res = run()
        ts.append(time.perf_counter() - t0)
        log(f"[{tool}:{method}] repeat {i + 1}/{a.repeats}: {ts[-1]:.3f} s")
    out = {"sec_per_token": statistics.median(ts) / a.targets, "seconds": ts,
           "warmup_seconds": warm, "result": summary(res), "fwd_bwd_seconds": ref,
           "torch_threads": torch.get_num_threads(), "versions": versions(tool)}
    if a.check:
        out["check"] = check(res)
    print("@@RESULT@@" + json.dumps(out))


# =========================================================================== parent
def parse_only(only):
    if not only:
        return [f"{t}:{m}" for t, ms in METHODS.items() for m in ms
                if f"{t}:{m}" not in NOT_DEFAULT]
    todo = []
    for item in only.split(","):
        item = item.strip()
        if ":" not in item:  # a whole tool
            todo += [f"{item}:{m}" for m in METHODS[item] if f"{item}:{m}" not in NOT_DEFAULT]
            continue
        t, m = item.split(":")
        if t not in METHODS or m not in METHODS[t]:
            sys.exit(f"unknown tool:method {item}; known: "
                     + ", ".join(f"{t}:{m}" for t, ms in METHODS.items() for m in ms))
        todo.append(item)
    return todo


def child_args(a, item):
    args = [os.path.abspath(__file__), "--child", item, "--model", os.path.abspath(a.model),
            "--prompt-len", str(a.prompt_len), "--targets", str(a.targets),
            "--repeats", str(a.repeats), "--threads", str(a.threads),
            "--inseq-score", a.inseq_score]
    if a.ig_batch is not None:
        args += ["--ig-batch", str(a.ig_batch)]
    if a.check:
        args.append("--check")
    return args


def main():
    ap = argparse.ArgumentParser(description="Seconds per attributed target token: Captum, LXT, "
                                 "inseq (see the module docstring).")
    ap.add_argument("--model", default=os.path.join("assets", "bench-llm", "gpt2-small"))
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--targets", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", default=None,
                    help="comma list of tool:method (or a bare tool); default: all but "
                    + ", ".join(sorted(NOT_DEFAULT)))
    ap.add_argument("--ig-batch", type=int, default=None,
                    help="internal_batch_size for IG (default: all 32 steps in one batch)")
    ap.add_argument("--inseq-score", choices=["logprob", "probability"], default="logprob",
                    help="inseq's attributed_fn: log p (default, = Captum's score) or p "
                         "(inseq's own default)")
    ap.add_argument("--check", action="store_true", help="verify results (tiny sizes only)")
    ap.add_argument("--dump-ids", default=None, help="write the prompt/continuation ids (JSON)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per tool:method child")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a)
        return
    if not os.path.exists(os.path.join(a.model, "config.json")):
        sys.exit(f"{a.model}/config.json not found: run benches/llm_make_model.py first")
    if a.dump_ids:
        cfg = json.load(open(os.path.join(a.model, "config.json")))
        # same generator as make_ids, computed in the Captum venv
        code = ("import json,sys;sys.path.insert(0,%r);import llm_attribution as m;"
                "p,c=m.make_ids(%d,%d,%d);print(json.dumps({'prompt_ids':p.tolist(),"
                "'continuation_ids':c.tolist()}))"
                % (os.path.dirname(os.path.abspath(__file__)), cfg["vocab_size"],
                   a.prompt_len, a.targets))
        ids = subprocess.run([PYTHONS["captum"], "-c", code], check=True, capture_output=True,
                             text=True).stdout
        with open(a.dump_ids, "w") as f:
            f.write(ids)
    todo = parse_only(a.only)
    report = {"P": a.prompt_len, "K": a.targets, "threads": a.threads, "repeats": a.repeats,
              "model": os.path.abspath(a.model), "ig_steps": IG_STEPS,
              "ig_internal_batch_size": a.ig_batch, "inseq_score": a.inseq_score,
              "fwd_bwd_seconds": None, "versions": {}, "details": {}, "errors": {}}
    for item in todo:
        tool, method = item.split(":")
        py = PYTHONS[tool]
        if not os.path.exists(py):
            report["errors"][item] = f"{py} not found (set {tool.upper()}_PYTHON)"
            log(f"[{item}] skipped: {report['errors'][item]}")
            continue
        log(f"[{item}] {py}")
        try:
            p = subprocess.run([py] + child_args(a, item), capture_output=True, text=True,
                               timeout=a.timeout)
        except subprocess.TimeoutExpired:
            report["errors"][item] = f"timed out after {a.timeout} s"
            log(f"[{item}] {report['errors'][item]}")
            continue
        sys.stderr.write(p.stderr)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("@@RESULT@@")]
        if p.returncode != 0 or not lines:
            tail = "\n".join(p.stderr.strip().splitlines()[-15:])
            report["errors"][item] = f"exit {p.returncode}: {tail}"
            log(f"[{item}] FAILED (exit {p.returncode})")
            continue
        r = json.loads(lines[-1][len("@@RESULT@@"):])
        report.setdefault(tool, {})[method] = r["sec_per_token"]
        report["versions"][tool] = r.pop("versions")
        report["details"][item] = r
        if tool == "captum" and report["fwd_bwd_seconds"] is None:
            report["fwd_bwd_seconds"] = r["fwd_bwd_seconds"]
        log(f"[{item}] {r['sec_per_token']:.4f} s/token")
    if report["fwd_bwd_seconds"] is None:  # no Captum child ran: measure in the Captum venv
        code = ("import json,sys,torch;sys.path.insert(0,%r);import llm_attribution as m;"
                "torch.set_num_threads(%d);mo=m.load_model(%r);p,c=m.make_ids("
                "mo.config.vocab_size,%d,%d);print(json.dumps(m.fwd_bwd_seconds(mo,p,c,%d)))"
                % (os.path.dirname(os.path.abspath(__file__)), a.threads,
                   os.path.abspath(a.model), a.prompt_len, a.targets, a.repeats))
        try:
            out = subprocess.run([PYTHONS["captum"], "-c", code], check=True,
                                 capture_output=True, text=True).stdout
            report["fwd_bwd_seconds"] = json.loads(out.strip().splitlines()[-1])
        except Exception as e:  # noqa: BLE001
            report["errors"]["fwd_bwd"] = repr(e)
    first = {t: report.pop(t) for t in METHODS if t in report}
    print(json.dumps({**first, **report}, indent=1))


if __name__ == "__main__":
    main()
