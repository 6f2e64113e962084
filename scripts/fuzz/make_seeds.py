"""Writes the seed inputs of the `load_checkpoint` fuzz target (fuzz/corpus/load_checkpoint/):
a tiny BERT classifier (hidden 4, one layer, 16 tokens) as safetensors + config.json +
tokenizer.json joined by "\n--\n", and a few near misses. Standard library only; run once:

    python3 scripts/fuzz/make_seeds.py
"""
import json, math, os, struct

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "fuzz", "corpus", "load_checkpoint")
H, I, V, P, T, L = 4, 8, 16, 16, 2, 2


def safetensors(tensors, dtype="F32"):
    header, blobs, off = {}, b"", 0
    for name, (shape, values) in tensors.items():
        fmt = {"F32": "f", "I32": "i"}[dtype]
        data = struct.pack(f"<{len(values)}{fmt}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


def t(shape, k):
    n = math.prod(shape)
    return (shape, [round(math.sin(i * k + k) * 0.3, 4) for i in range(n)])


def weights(dtype="F32"):
    w = {
        "embeddings.word_embeddings.weight": t([V, H], 0.7),
        "embeddings.position_embeddings.weight": t([P, H], 0.3),
        "embeddings.token_type_embeddings.weight": t([T, H], 0.2),
        "embeddings.LayerNorm.weight": ([H], [1.0] * H),
        "embeddings.LayerNorm.bias": ([H], [0.0] * H),
        "pooler.dense.weight": t([H, H], 1.1),
        "pooler.dense.bias": t([H], 0.4),
        "classifier.weight": t([L, H], 0.9),
        "classifier.bias": t([L], 0.5),
    }
    p = "encoder.layer.0."
    for name, shape in [("attention.self.query", [H, H]), ("attention.self.key", [H, H]),
                        ("attention.self.value", [H, H]), ("attention.output.dense", [H, H]),
                        ("intermediate.dense", [I, H]), ("output.dense", [H, I])]:
        w[p + name + ".weight"] = t(shape, 0.1 * len(name))
        w[p + name + ".bias"] = t(shape[:1], 0.05 * len(name))
    for name in ["attention.output.LayerNorm", "output.LayerNorm"]:
        w[p + name + ".weight"] = ([H], [1.0] * H)
        w[p + name + ".bias"] = ([H], [0.0] * H)
    if dtype == "I32":
        w = {k: (s, [int(v * 10) for v in vals]) for k, (s, vals) in w.items()}
    return safetensors(w, dtype)


CONFIG = {"model_type": "bert", "vocab_size": V, "hidden_size": H, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": I, "hidden_act": "gelu",
          "max_position_embeddings": P, "type_vocab_size": T, "layer_norm_eps": 1e-12,
          "num_labels": L}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "not", "bad", "good", "sentence",
         ",", ".", "fuzz", "##ed", "the", "film"]
TOKENIZER = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}
                     for i, s in enumerate(VOCAB[:5])],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {s: i for i, s in enumerate(VOCAB)}},
}


def seed(name, w, config, tokenizer):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(w + b"\n--\n" + json.dumps(config).encode() + b"\n--\n" + json.dumps(tokenizer).encode())


os.makedirs(OUT, exist_ok=True)
seed("tiny_bert", weights(), CONFIG, TOKENIZER)
seed("int_weights", weights("I32"), CONFIG, TOKENIZER)
seed("two_layers_in_config", weights(), {**CONFIG, "num_hidden_layers": 2}, TOKENIZER)
seed("eps_as_string", weights(), {**CONFIG, "layer_norm_eps": "1e-12"}, TOKENIZER)
seed("act_as_number", weights(), {**CONFIG, "hidden_act": 3}, TOKENIZER)
seed("vocab_mismatch", weights(), {**CONFIG, "vocab_size": 17}, TOKENIZER)
seed("truncated", weights()[:200], CONFIG, TOKENIZER)
