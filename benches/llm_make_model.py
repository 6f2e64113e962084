"""Random-weight causal LM checkpoints for the LLM attribution speed benchmark
(the Python twin is benches/llm_attribution.py).

Writes, with save_pretrained(safe_serialization=True) (config.json,
generation_config.json, model.safetensors; float32; no tokenizer: the benchmark
feeds token ids directly):

    <out>/gpt2-small/   GPT2LMHeadModel  n_embd 768, n_layer 12, n_head 12,
                        n_inner None (= 3072), vocab 50257, n_positions 1024,
                        gelu_new, layer_norm_epsilon 1e-5, tied lm_head
                        (124.4M parameters, 497 MB)
    <out>/llama-small/  LlamaForCausalLM hidden 768, 12 layers, 12 heads,
                        4 KV heads (head_dim 64), intermediate 2048, silu,
                        vocab 32000, max_position_embeddings 4096, rope_theta
                        10000, rms_norm_eps 1e-5, UNtied lm_head, no biases
                        (124.7M parameters, 499 MB)

    --tiny: the same two families with hidden 64, 2 layers, 4 heads (llama: 2 KV
    heads, intermediate 128), GPT-2 n_positions 1024 and the same vocab sizes,
    for a quick correctness run (default folders <out>/gpt2-tiny, <out>/llama-tiny).

Weights: transformers' own initialisation (normal(0, initializer_range=0.02)
for Linear/Conv1D/Embedding, ones/zeros for the norms), drawn after
torch.manual_seed(0) (gpt2) and torch.manual_seed(1) (llama) right before the
model is built; eval mode, attn_implementation="eager".  The timing does not
depend on the values.

config.json is what transformers 5 writes: the Llama rotary settings are spelled
"rope_parameters" {"rope_type": "default", "rope_theta": 10000.0}; transformers
4.x ignores that key (it would then fall back to its default rope_theta, also
10000), and benches/llm_attribution.py copies it into rope_theta when it loads a
folder under transformers 4.x (the LXT and inseq venvs).

Run (repo root; assets/ is git-ignored):

    /work/venv/bin/python benches/llm_make_model.py                # -> assets/bench-llm/
    /work/venv/bin/python benches/llm_make_model.py --tiny --out /tmp/bench-llm
"""

import argparse
import os

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


def gpt2_config(tiny: bool) -> GPT2Config:
    h, layers, heads = (64, 2, 4) if tiny else (768, 12, 12)
    return GPT2Config(
        vocab_size=50257, n_positions=1024, n_embd=h, n_layer=layers, n_head=heads,
        n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=50256, eos_token_id=50256, tie_word_embeddings=True,
        attn_implementation="eager")


def llama_config(tiny: bool) -> LlamaConfig:
    h, layers, heads, kv, inter = (64, 2, 4, 2, 128) if tiny else (768, 12, 12, 4, 2048)
    kw = dict(
        vocab_size=32000, hidden_size=h, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
        hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5,
        tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        attention_dropout=0.0, bos_token_id=1, eos_token_id=2,
        attn_implementation="eager")
    if int(transformers.__version__.split(".")[0]) >= 5:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        kw["rope_theta"] = 10000.0
    return LlamaConfig(**kw)


def build(cls, cfg, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = cls(cfg).to(torch.float32).eval()
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("assets", "bench-llm"),
                    help="parent folder (default assets/bench-llm)")
    ap.add_argument("--tiny", action="store_true",
                    help="hidden 64, 2 layers (folders gpt2-tiny, llama-tiny)")
    ap.add_argument("--only", choices=["gpt2", "llama"], default=None)
    a = ap.parse_args()
    suffix = "tiny" if a.tiny else "small"
    todo = [("gpt2", GPT2LMHeadModel, gpt2_config, 0), ("llama", LlamaForCausalLM, llama_config, 1)]
    for name, cls, mk, seed in todo:
        if a.only and a.only != name:
            continue
        folder = os.path.join(a.out, f"{name}-{suffix}")
        os.makedirs(folder, exist_ok=True)
        model = build(cls, mk(a.tiny), seed)
        model.save_pretrained(folder, safe_serialization=True)
        n = sum(p.numel() for p in model.parameters())
        # sanity: the saved folder loads back to the same logits
        ids = torch.arange(10, 26).unsqueeze(0)
        back = cls.from_pretrained(folder, attn_implementation="eager").eval()
        with torch.no_grad():
            d = (model(ids).logits - back(ids).logits).abs().max().item()
        assert d == 0.0, (name, d)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"{folder}: {cls.__name__}, {n / 1e6:.1f}M parameters, {size / 1e6:.1f} MB "
              f"({', '.join(sorted(os.listdir(folder)))})")


if __name__ == "__main__":
    main()
