"""Captum / transformers CPU side of the encoder-family speed comparison (issue 18).

IG-50 for one 128-token sentence at the word embeddings, on random-weight
DistilBERT-base (6 layers) and BERT-base (12 layers), hidden 768, 12 heads, FFN 3072,
2 labels, eval mode, eager attention, float32:

    LayerIntegratedGradients(forward, model.<base>.embeddings.word_embeddings)
        .attribute(ids, baselines=zeros, target=1, n_steps=50,
                   method="gausslegendre")       # all 50 steps in one batch

The twin of criterion's `hf_ig50_l128_cpu` group (benches/benchmarks/families.rs).
One warm-up call, then the median of --reps timed calls. Prints one JSON object.

Run (repo root):  /work/venv/bin/python benches/captum_hf_text.py [--threads 2] [--reps 3]
"""

import argparse
import json
import statistics
import time

import torch
import captum
import transformers
from captum.attr import LayerIntegratedGradients
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    models = {
        "distilbert_base": (DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072, num_labels=2,
            attn_implementation="eager")), "distilbert"),
        "bert_base": (BertForSequenceClassification(BertConfig(
            vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, num_labels=2, attn_implementation="eager")), "bert"),
    }
    ids = torch.randint(1000, 30000, (1, 128))
    ids[0, 0], ids[0, -1] = 101, 102
    results = {}
    for name, (model, base) in models.items():
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        layer = getattr(model, base).embeddings.word_embeddings

        def forward(inp):
            return model(input_ids=inp).logits

        lig = LayerIntegratedGradients(forward, layer)
        run = lambda: lig.attribute(ids, baselines=torch.zeros_like(ids), target=1, n_steps=50,
                                    method="gausslegendre")
        run()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        results[name] = {"median_s": statistics.median(times), "reps": a.reps}
    print(json.dumps({"torch": torch.__version__, "captum": captum.__version__,
                      "transformers": transformers.__version__, "threads": a.threads,
                      "results": results}))


if __name__ == "__main__":
    main()
