"""Golden layer attributions from Captum on the real all-MiniLM-L6-v2 BERT.

Produces
    crates/models/tests/data/captum_bert_layer.safetensors

Model: transformers' BertModel from the Hugging Face folder
assets/all-MiniLM-L6-v2 (fetched by `scripts/fetch-assets.sh minilm`), eval
mode, attn_implementation="eager", float32, token_type_ids left to the
default (zeros); logits = classifier(pooler_output) with the classification
head nn.Linear(384, 2) freshly initialised (PyTorch default init) right
after torch.manual_seed(0), not rescaled.

Inputs: two sentences of different lengths tokenized with the folder's
tokenizer.json (the tokenizers library, its fixed 128 padding and
truncation switched off): [CLS] ... [SEP], then padded on the right with id 0
to the longer length L; attention_mask 1 on real tokens, 0 on padding.
The reference ids keep [CLS] (101) at position 0 and [SEP] (102) at each
sentence's own [SEP] position, with [PAD] = 0 everywhere else.

Keys (B = 2, L = 17, H = 384):
    classifier.weight (2,384), classifier.bias (2,)   the head
    input_ids, attention_mask, ref_ids   int64 (B,L)
    target   int64 (B,) = [1, 0]
    logits   float32 (B,2)
    lig_embeddings_gl50        (B,L,H) LayerIntegratedGradients(forward,
        model.embeddings).attribute(input_ids, baselines=ref_ids,
        additional_forward_args=(attention_mask,), target=target, n_steps=50,
        method="gausslegendre", return_convergence_delta=True)
    lig_embeddings_gl50_delta  (B,)    its delta = sum(attr) - (F(x) - F(ref))
    lgxa_embeddings            (B,L,H) LayerGradientXActivation(forward,
        model.embeddings).attribute(input_ids, additional_forward_args=
        (attention_mask,), target=target)
"model.embeddings" is BertEmbeddings: its *output*, i.e. LayerNorm(word +
position + token-type embeddings) (dropout is off in eval).  The baseline
layer activations are the embeddings output at ref_ids, so LIG integrates
along the straight line between the two embeddings outputs, with the same
attention_mask for every point:
    attr = (e(x) - e(ref)) * sum_k w_k dF/de(e(ref) + a_k (e(x) - e(ref)))
with the Gauss-Legendre nodes a_k = (1 + t_k)/2 and weights w_k = v_k/2 of
numpy.polynomial.legendre.leggauss(50).  LayerGradientXActivation = e(x) *
dF/de(x).

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/bert_layer_captum.py

(needs torch, captum 0.9, transformers, tokenizers, numpy, safetensors;
generated with torch 2.15.0, captum 0.9.0, transformers 5.24.0, tokenizers
0.23.3).  float32, CPU, torch.set_num_threads(1), deterministic algorithms;
the versions are recorded in the safetensors metadata.  Asserts a few
invariants (LIG delta small, logits equal a manual pooler/head pass, LGxA
equals embeddings output times an autograd gradient) before writing.
"""

import datetime
import os
import sys
import warnings

import numpy as np
import tokenizers
import torch
import torch.nn as nn
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import BertModel

import captum
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

FOLDER = os.path.join("assets", "all-MiniLM-L6-v2")
OUT_PATH = os.path.join("crates", "models", "tests", "data", "captum_bert_layer.safetensors")
SENTENCES = [
    "a gripping, beautifully acted film",
    "the plot was dull and the jokes fell flat, a waste of two hours",
]
CLS, SEP, PAD = 101, 102, 0


def f32(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.float32, t.dtype
    return t.detach().contiguous().clone()


def main() -> None:
    warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    if not os.path.exists(os.path.join(FOLDER, "model.safetensors")):
        sys.exit(f"{FOLDER} missing: run scripts/fetch-assets.sh minilm")

    model = BertModel.from_pretrained(FOLDER, attn_implementation="eager",
                                      dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    assert model.config.hidden_size == 384
    assert model.config._attn_implementation == "eager"

    torch.manual_seed(0)
    head = nn.Linear(384, 2)
    head.eval()
    for p in head.parameters():
        p.requires_grad_(False)

    # --- tokens -------------------------------------------------------------
    tok = Tokenizer.from_file(os.path.join(FOLDER, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    encs = [tok.encode(s) for s in SENTENCES]
    for e in encs:
        assert e.ids[0] == CLS and e.ids[-1] == SEP, e.tokens
    lens = [len(e.ids) for e in encs]
    assert lens[0] != lens[1], lens
    L = max(lens)
    input_ids = torch.zeros(2, L, dtype=torch.int64)
    attention_mask = torch.zeros(2, L, dtype=torch.int64)
    ref_ids = torch.zeros(2, L, dtype=torch.int64)
    for b, e in enumerate(encs):
        n = len(e.ids)
        input_ids[b, :n] = torch.tensor(e.ids)
        attention_mask[b, :n] = 1
        ref_ids[b, 0] = CLS
        ref_ids[b, n - 1] = SEP
    target = torch.tensor([1, 0], dtype=torch.int64)

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return head(model(input_ids=ids, attention_mask=mask).pooler_output)

    with torch.no_grad():
        logits = forward(input_ids, attention_mask)
        # manual pooler + head on the encoder output
        seq = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = torch.tanh(model.pooler.dense(seq[:, 0]))
        assert torch.allclose(head(pooled), logits, atol=1e-6)
    assert logits.dtype == torch.float32

    out: dict[str, torch.Tensor] = {
        "classifier.weight": f32(head.weight),
        "classifier.bias": f32(head.bias),
        "input_ids": input_ids.clone(),
        "attention_mask": attention_mask.clone(),
        "ref_ids": ref_ids.clone(),
        "target": target.clone(),
        "logits": f32(logits),
    }

    # --- Captum ---------------------------------------------------------------
    lig = LayerIntegratedGradients(forward, model.embeddings)
    a, d = lig.attribute(
        input_ids, baselines=ref_ids, additional_forward_args=(attention_mask,),
        target=target, n_steps=50, method="gausslegendre",
        return_convergence_delta=True)
    out["lig_embeddings_gl50"] = f32(a)
    out["lig_embeddings_gl50_delta"] = f32(d)

    out["lgxa_embeddings"] = f32(LayerGradientXActivation(forward, model.embeddings).attribute(
        input_ids, additional_forward_args=(attention_mask,), target=target))

    # --- self checks -------------------------------------------------------------
    rows = torch.arange(2)
    for k, v in out.items():
        if v.dtype.is_floating_point:
            assert torch.isfinite(v).all(), k
    assert out["lig_embeddings_gl50"].shape == (2, L, 384)
    assert out["lgxa_embeddings"].shape == (2, L, 384)
    assert out["lig_embeddings_gl50_delta"].shape == (2,)

    with torch.no_grad():
        f_x = forward(input_ids, attention_mask)[rows, target]
        f_r = forward(ref_ids, attention_mask)[rows, target]
    attr_sum = out["lig_embeddings_gl50"].sum(dim=(1, 2))
    assert torch.allclose(attr_sum - (f_x - f_r), out["lig_embeddings_gl50_delta"], atol=1e-5)
    rel = (out["lig_embeddings_gl50_delta"].abs() / (f_x - f_r).abs()).max().item()
    assert rel < 0.05, (out["lig_embeddings_gl50_delta"], f_x - f_r)

    # LGxA == embeddings output * gradient of the target logit w.r.t. it
    # (a forward hook substitutes a leaf tensor for the embeddings output)
    with torch.no_grad():
        emb = model.embeddings(input_ids=input_ids)
    emb = emb.detach().clone().requires_grad_(True)
    handle = model.embeddings.register_forward_hook(lambda _m, _i, _o: emb)
    try:
        with torch.enable_grad():
            lo = forward(input_ids, attention_mask)
            assert torch.allclose(lo, logits, atol=1e-6), (lo, logits)
            g, = torch.autograd.grad(lo[rows, target].sum(), emb)
    finally:
        handle.remove()
    assert torch.allclose(out["lgxa_embeddings"], emb.detach() * g, atol=1e-6, rtol=1e-4)

    # padding positions: embeddings still depend on them, but the attention
    # mask hides them from every query, so their gradient (and LGxA) is 0
    pad = attention_mask == 0
    assert pad.any()
    assert out["lgxa_embeddings"][pad].abs().max() == 0

    meta = {
        "torch": torch.__version__,
        "captum": captum.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "generator": "scripts/golden/bert_layer_captum.py",
        "checkpoint": "assets/all-MiniLM-L6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "head": "nn.Linear(384, 2) after torch.manual_seed(0), default init",
        "sentences": " || ".join(SENTENCES),
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    save_file(out, OUT_PATH, metadata=meta)
    print(f"wrote {OUT_PATH} ({os.path.getsize(OUT_PATH)} bytes)")
    for k, v in out.items():
        print(f"  {k:28s} {str(v.dtype):14s} {tuple(v.shape)}")
    print(f"  meta: {meta}")
    print(f"  tokens: {[e.tokens for e in encs]}")
    print(f"  logits = {logits.tolist()}")
    print(f"  F(x) - F(ref) = {(f_x - f_r).tolist()}; "
          f"lig delta = {out['lig_embeddings_gl50_delta'].tolist()}")


if __name__ == "__main__":
    main()
