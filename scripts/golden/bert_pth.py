"""The tiny BERT of hf_families.py as a PyTorch pickle, for the `pytorch_model.bin` loader.

Writes crates/models/tests/data/hf/bert_pth/pytorch_model.bin: the state dict of
crates/models/tests/data/hf/bert/model.safetensors saved with torch.save (its config.json and
tokenizer.json are copied beside it). The Rust test checks that both load to the same model.

Run from the repository root:  /work/venv/bin/python scripts/golden/bert_pth.py
"""
import shutil

import torch
from safetensors.torch import load_file

SRC, DST = "crates/models/tests/data/hf/bert", "crates/models/tests/data/hf/bert_pth"
for f in ("config.json", "tokenizer.json"):
    shutil.copy(f"{SRC}/{f}", f"{DST}/{f}")
torch.save(load_file(f"{SRC}/model.safetensors"), f"{DST}/pytorch_model.bin")
