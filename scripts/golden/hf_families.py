"""Tiny random Hugging Face checkpoints of seven encoder families, with golden
Captum attributions, for the Rust loaders.

Produces, under crates/models/tests/data/hf/:
    bert/          BertForSequenceClassification        3 labels
    bert_ner/      BertForTokenClassification           5 labels (NER tags)
    bert_sharded/  the bert model saved with save_pretrained(max_shard_size="50KB"):
                   config.json, tokenizer.json, model.safetensors.index.json and
                   model-0000k-of-00003.safetensors (3 shards); no golden file
                   (bert/golden.safetensors applies)
    distilbert/    DistilBertForSequenceClassification  2 labels
    roberta/       RobertaForSequenceClassification     3 labels
    xlm_roberta/   XLMRobertaForSequenceClassification  2 labels
    electra/       ElectraForSequenceClassification     2 labels (embedding_size
                   16 != hidden_size 32, so electra.embeddings_project exists)
    vit/           ViTForImageClassification            3 labels
Each folder holds exactly config.json, model.safetensors (float32, written by
transformers' save_pretrained(safe_serialization=True), so with the key names
of real hub checkpoints), tokenizer.json (text families) or
preprocessor_config.json (vit), and golden.safetensors.  Every other file that
transformers writes is deleted (the script prints their names).

Models: built by transformers from a config (hidden 32, 2 layers, 4 heads,
intermediate 37, max_position_embeddings 64, or 66 = 64 + padding_idx + 1 for
RoBERTa/XLM-R, as real RoBERTa has 514 = 512 + 2), torch.manual_seed(seed) right
before construction, attn_implementation="eager", eval mode, float32.  Then every
parameter is redrawn from a torch.Generator seeded with the same seed (module
order of named_modules()), so that no tensor is a constant that a broken loader
could get right by accident (transformers' default init has LayerNorm weight 1,
bias 0, Linear biases 0 and std 0.02, which makes every logit nearly equal):
    Linear / Conv2d weight  N(0, 1/fan_in)      bias  N(0, 0.1^2)
    LayerNorm weight        1 + N(0, 0.1^2)     bias  N(0, 0.1^2)
    Embedding weight        N(0, 0.5^2) (padding rows included)
    ViT cls_token, position_embeddings  N(0, 0.5^2)
Seeds: bert 1, bert_ner 2, distilbert 3, roberta 4, xlm_roberta 5, electra 6,
vit 7.  config.json id2label/label2id carry real names; layer_norm_eps is 1e-5
for RoBERTa and XLM-R (as in roberta-base / xlm-roberta-base; transformers'
default would be 1e-12), type_vocab_size 1 for both (as on the hub).

Tokenizers (the tokenizers library, learnt from CORPUS, 32 movie-review-like
sentences written below; saved with Tokenizer.save, no padding/truncation set):
    bert, bert_ner, bert_sharded, distilbert, electra: WordPiece (vocabulary
        from WordPieceTrainer(vocab_size=300, min_frequency=1), BertNormalizer
        lowercase, BertPreTokenizer, TemplateProcessing "[CLS] $A [SEP]" /
        "[CLS] $A [SEP] $B:1 [SEP]:1", WordPiece decoder), 300 tokens, specials
        [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4.  The bert family's model
        vocab_size is the tokenizer's + 8 = 308 (an embedding table padded
        beyond the tokenizer, as real checkpoints often are); distilbert and
        electra use the tokenizer's 300.
    roberta: byte-level BPE (ByteLevel(add_prefix_space=False) pre-tokenizer and
        decoder, BpeTrainer(vocab_size=400) with the 256-byte initial alphabet,
        RobertaProcessing), 400 tokens, specials <s>=0 <pad>=1 </s>=2 <unk>=3
        <mask>=4.
    xlm_roberta: Unigram (vocabulary from UnigramTrainer(vocab_size=300), which
        stops at 205 pieces on this small corpus; NFKC + collapse of repeated
        spaces, Metaspace "\u2581" prepend_scheme "always", TemplateProcessing
        "<s> $A </s>" / "<s> $A </s> </s> $B </s>"), specials <s>=0 <pad>=1
        </s>=2 <unk>=3.
    WordPieceTrainer and UnigramTrainer are NOT reproducible between processes
    (hash-map iteration order breaks ties), so their vocabularies were learnt
    once and are frozen in scripts/golden/hf_families_vocab.json; the script
    rebuilds the two tokenizers from it (and checked, when it learnt them, that
    the rebuilt tokenizer.json equals the trained one byte for byte).  Run with
    --retrain to learn new ones (this rewrites the JSON, and every artefact
    changes).  The byte-level BPE trainer is deterministic and runs every time.
    pad_token_id = 1 for roberta and xlm_roberta, 0 for the rest.

golden.safetensors, text families (B = 2, L = longest of the two, E = width of
the word-embedding table: 32, or 16 for electra):
    input_ids, attention_mask   int64 (B,L)  two sentences of different lengths,
        encoded with the folder's tokenizer.json, right-padded with the pad id;
        mask 1 on real tokens, 0 on padding
    ref_ids   int64 (B,L)  input_ids with every token that is not [CLS]/[SEP]/
        <s>/</s>/pad replaced by the pad id
    target    int64 (B,)   the class attributed: per example the class whose
        logit changes most between the start and the end of the LIG path,
        argmax_c |F_c(x) - F_c(path start)| (bert_ner: fixed, see target_token)
    logits    float32 (B,C) model(input_ids, attention_mask).logits
        (bert_ner: (B,L,C), the token logits of the whole sequence)
    ref_logits float32 (B,C) forward(ref_ids, attention_mask)
    word_embeddings (B,L,E) the word-embedding module's output at input_ids
    lig_word_gl50 (B,L,E), lig_word_gl50_delta (B,)
        LayerIntegratedGradients(forward, <word embeddings>).attribute(
        input_ids, baselines=ref_ids, additional_forward_args=(attention_mask,),
        target=target, n_steps=50, method="gausslegendre",
        return_convergence_delta=True)
    lgxa_word (B,L,E) LayerGradientXActivation(forward, <word embeddings>)
        .attribute(input_ids, additional_forward_args=(attention_mask,),
        target=target)
  where forward(ids, mask) = model(input_ids=ids, attention_mask=mask).logits and
  <word embeddings> is model.{bert,distilbert,roberta,electra}.embeddings.
  word_embeddings (xlm_roberta: model.roberta...).  token_type_ids and
  position_ids are never passed (the models' defaults).
  bert_ner adds target_token int64 (B,) (the token position attributed per
  example) and token_logits float32 (B,C) = logits[b, target_token[b], :]; its
  forward is forward(ids, mask, target_token) = model(...).logits[arange(n),
  target_token] with target_token passed as a third additional forward arg
  (Captum repeats it along the batch like the mask).
  roberta and xlm_roberta add position_ids and ref_position_ids int64 (B,L):
  the ids RobertaEmbeddings derives from input_ids / ref_ids (cumsum of
  non-pad tokens + padding_idx, pad tokens get padding_idx).  NOTE: Captum's
  LIG runs the interpolated forwards with input_ids, so their position ids are
  those of input_ids, while its delta uses forward(ref_ids), whose position ids
  differ (replaced tokens become pads).  Hence for these two families
  lig_word_gl50_delta is NOT small; the path itself is checked instead (sum of
  attributions = F(x) - F(path start), path start = input_ids with the word
  embeddings of ref_ids).  path_start_logits float32 (B,C) is saved for them.
golden.safetensors, vit:
    pixel_values (2,3,16,16) float32, uniform in [-1, 1) from
        torch.Generator().manual_seed(7) (i.e. already normalised with mean and
        std 0.5)
    target int64 (2,) = [1, 0]; logits (2,3)
    saliency (2,3,16,16) Saliency(model_fn).attribute(pixel_values,
        target=target, abs=False), model_fn(x) = model(pixel_values=x).logits
    ig_gl50 (2,3,16,16), ig_gl50_delta (2,) IntegratedGradients(model_fn)
        .attribute(pixel_values, baselines=0, target=target, n_steps=50,
        method="gausslegendre", return_convergence_delta=True)

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/hf_families.py [--retrain]

(needs torch, captum 0.9, transformers 5, tokenizers, numpy, safetensors;
generated with torch 2.15.0, captum 0.9.0, transformers 5.24.0, tokenizers
0.23.3, safetensors 0.8.0).  float32, CPU, torch.set_num_threads(1),
deterministic algorithms; the versions are recorded in golden.safetensors'
metadata (no date, and the safetensors header rewritten in sorted order, so
that a rerun is byte-identical).  Before writing, the
script asserts: logits equal a second forward and a forward of the folder
reloaded with from_pretrained (bitwise), the sharded copy reloads to the same
logits, LIG deltas are what Captum says and below 5 % of F(x) - F(ref)
(RoBERTa/XLM-R: of F(x) - F(path start)), |F(x) - F(path start)| > 0.01, LGxA equals the word
embeddings times an autograd gradient and is exactly 0 at padding, saliency
equals an autograd gradient, IG delta small, every folder <= 2 MB.
"""

import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import (Regex, Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, processors, trainers)
from transformers import (BertConfig, BertForSequenceClassification,  # noqa: E402
                          BertForTokenClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, ElectraConfig,
                          ElectraForSequenceClassification, RobertaConfig,
                          RobertaForSequenceClassification, ViTConfig,
                          ViTForImageClassification, XLMRobertaConfig,
                          XLMRobertaForSequenceClassification)

import captum  # noqa: E402
from captum.attr import (IntegratedGradients, LayerGradientXActivation,  # noqa: E402
                         LayerIntegratedGradients, Saliency)

ROOT = os.path.join("crates", "models", "tests", "data", "hf")
MAX_FOLDER_BYTES = 2 * 1024 * 1024

CORPUS = [
    "a gripping, beautifully acted film with a moving score.",
    "the plot was dull and the jokes fell flat.",
    "i loved every minute of this wonderful movie.",
    "a waste of two hours, the worst film of the year.",
    "the acting is superb and the story is touching.",
    "boring, predictable and far too long.",
    "john and mary gave brilliant performances in paris.",
    "the director shot the whole movie in london last summer.",
    "tom hanks is charming as always, but the script is weak.",
    "an enjoyable comedy that the whole family will love.",
    "the special effects were impressive, the dialogue was not.",
    "i fell asleep halfway through the second act.",
    "a masterpiece of suspense with a stunning final scene.",
    "the characters were flat and the ending made no sense.",
    "anna travelled from berlin to rome to film the sequel.",
    "a fresh, funny and surprisingly tender story.",
    "the music was loud and the editing was chaotic.",
    "one of the best films i have seen in years.",
    "the cast tried hard, but the story never takes off.",
    "peter and lucy meet in new york and fall in love.",
    "a slow start, then a thrilling and clever second half.",
    "the camera work is beautiful and the colours are rich.",
    "i would not recommend this movie to anyone.",
    "the jokes are clever and the timing is perfect.",
    "a dull remake that adds nothing to the original.",
    "she gives the performance of her career in this drama.",
    "the film was shot in madrid and the scenery is lovely.",
    "too many characters and not enough story.",
    "a warm, heartfelt film about friendship and loss.",
    "the villain was scary and the hero was likeable.",
    "paul said the movie was great, and he was right.",
    "an awful script, wooden acting and a silly twist.",
]

SEQ_SENTENCES = [
    "a gripping, beautifully acted film",
    "the plot was dull and the jokes fell flat, a waste of two hours",
]
# (sentence, attributed word, its class)
NER_EXAMPLES = [
    ("john loved the film he saw in paris", "paris", 3),        # B-LOC
    ("last summer mary and tom watched a movie in london", "mary", 1),  # B-PER
]

LABELS3 = {0: "negative", 1: "positive", 2: "neutral"}
LABELS2 = {0: "negative", 1: "positive"}
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
VIT_LABELS = {0: "cat", 1: "dog", 2: "bird"}

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=37)


# --------------------------------------------------------------------------- tokenizers
# tokenizers' WordPieceTrainer and UnigramTrainer are not reproducible from one
# process to the next (WordPiece: the ids of the "##x" start symbols follow a
# hash map's iteration order and break ties between equally frequent merges, so
# the learnt vocabulary differs run to run; Unigram: sums over a hash map make
# the scores, and now and then the pieces, differ).  Their output is therefore
# trained once (--retrain) and frozen in VOCAB_PATH; the tokenizers are rebuilt
# from it with the same normalizer / pre-tokenizer / post-processor / decoder.
# The byte-level BPE trainer is deterministic (its start symbols are the sorted
# byte alphabet) and is trained on every run.
VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_families_vocab.json")
WP_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNI_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def _wordpiece_pipeline(tok: Tokenizer) -> Tokenizer:
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _unigram_pipeline(tok: Tokenizer) -> Tokenizer:
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return tok


def _wordpiece_post(tok: Tokenizer) -> Tokenizer:
    ids = [tok.token_to_id(t) for t in WP_SPECIALS]
    assert ids == [0, 1, 2, 3, 4], ids
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def _unigram_post(tok: Tokenizer) -> Tokenizer:
    ids = [tok.token_to_id(t) for t in UNI_SPECIALS]
    assert ids == [0, 1, 2, 3], ids
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def train_wordpiece() -> Tokenizer:
    tok = _wordpiece_pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")))
    trainer = trainers.WordPieceTrainer(vocab_size=300, min_frequency=1, show_progress=False,
                                        special_tokens=WP_SPECIALS)
    tok.train_from_iterator(CORPUS, trainer)
    return _wordpiece_post(tok)


def train_unigram() -> Tokenizer:
    tok = _unigram_pipeline(Tokenizer(models.Unigram()))
    trainer = trainers.UnigramTrainer(vocab_size=300, show_progress=False, unk_token="<unk>",
                                      special_tokens=UNI_SPECIALS)
    tok.train_from_iterator(CORPUS, trainer)
    return _unigram_post(tok)


def wordpiece_from_vocab(tokens: list[str]) -> Tokenizer:
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens)
    tok = _wordpiece_pipeline(Tokenizer(models.WordPiece(
        vocab, unk_token="[UNK]", max_input_chars_per_word=100)))
    tok.add_special_tokens(WP_SPECIALS)
    return _wordpiece_post(tok)


def unigram_from_vocab(pieces: list[list]) -> Tokenizer:
    tok = _unigram_pipeline(Tokenizer(models.Unigram(
        [(p, float(sc)) for p, sc in pieces], unk_id=3, byte_fallback=False)))
    tok.add_special_tokens(UNI_SPECIALS)
    return _unigram_post(tok)


def frozen_vocab_tokenizers(retrain: bool) -> tuple[Tokenizer, Tokenizer]:
    if retrain or not os.path.exists(VOCAB_PATH):
        wp, uni = train_wordpiece(), train_unigram()
        wp_tokens = [t for t, _ in sorted(wp.get_vocab().items(), key=lambda kv: kv[1])]
        assert [wp.token_to_id(t) for t in wp_tokens] == list(range(len(wp_tokens)))
        uni_pieces = json.loads(uni.to_str())["model"]["vocab"]
        # rebuilding from the vocabulary gives the very same tokenizer.json
        assert wordpiece_from_vocab(wp_tokens).to_str() == wp.to_str()
        assert unigram_from_vocab(uni_pieces).to_str() == uni.to_str()
        with open(VOCAB_PATH, "w", encoding="utf-8") as f:
            json.dump({
                "note": "learnt by scripts/golden/hf_families.py --retrain (tokenizers "
                        f"{tokenizers.__version__} WordPieceTrainer(vocab_size=300) and "
                        "UnigramTrainer(vocab_size=300) on its CORPUS); frozen because "
                        "those trainers are not reproducible between runs",
                "wordpiece": wp_tokens,
                "unigram": uni_pieces,
            }, f, ensure_ascii=False, indent=0)
            f.write("\n")
        print(f"wrote {VOCAB_PATH}")
    with open(VOCAB_PATH, encoding="utf-8") as f:
        v = json.load(f)
    return wordpiece_from_vocab(v["wordpiece"]), unigram_from_vocab(v["unigram"])


def bytelevel_bpe_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, min_frequency=1, show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    ids = [tok.token_to_id(t) for t in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]]
    assert ids == [0, 1, 2, 3, 4], ids
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return tok


# --------------------------------------------------------------------------- helpers
def f32(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.float32, t.dtype
    return t.detach().contiguous().clone()


def randomize(model: nn.Module, seed: int) -> None:
    """Redraw every parameter (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    done = set()

    def normal(p, std, mean=0.0):
        p.copy_(torch.randn(p.shape, generator=g) * std + mean)
        done.add(id(p))

    with torch.no_grad():
        for _name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                normal(m.weight, fan_in ** -0.5)
                if m.bias is not None:
                    normal(m.bias, 0.1)
            elif isinstance(m, nn.LayerNorm):
                normal(m.weight, 0.1, 1.0)
                normal(m.bias, 0.1)
            elif isinstance(m, nn.Embedding):
                normal(m.weight, 0.5)
        for name, p in model.named_parameters():
            if id(p) not in done:
                assert name.endswith(("cls_token", "position_embeddings")), name
                normal(p, 0.5)
    assert all(id(p) in done for p in model.parameters())


def save_checkpoint(model, folder: str, keep: list[str], **kw) -> list[str]:
    """save_pretrained, then delete everything that is not in `keep`;
    returns the names deleted."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True, **kw)
    extra = []
    for f in sorted(os.listdir(folder)):
        if f not in keep and not (f.startswith("model-") and f.endswith(".safetensors")):
            extra.append(f)
            p = os.path.join(folder, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    return extra


def encode_batch(tok: Tokenizer, sentences: list[str], pad_id: int):
    tok.no_padding()
    tok.no_truncation()
    encs = [tok.encode(s) for s in sentences]
    lens = [len(e.ids) for e in encs]
    assert lens[0] != lens[1], lens
    L = max(lens)
    ids = torch.full((len(encs), L), pad_id, dtype=torch.int64)
    mask = torch.zeros(len(encs), L, dtype=torch.int64)
    for b, e in enumerate(encs):
        ids[b, :len(e.ids)] = torch.tensor(e.ids)
        mask[b, :len(e.ids)] = 1
    return encs, ids, mask


def versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "captum": captum.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "generator": "scripts/golden/hf_families.py",
    }


def save_golden(tensors: dict[str, torch.Tensor], path: str, meta: dict[str, str]) -> None:
    """safetensors' save_file, then its JSON header rewritten with the metadata
    keys and the tensor entries in sorted order (save_file orders the metadata
    by a hash map, which would make every run's file differ)."""
    save_file(tensors, path, metadata=meta)
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    canon = {"__metadata__": dict(sorted(header.pop("__metadata__").items()))}
    canon.update(sorted(header.items()))
    text = json.dumps(canon, separators=(",", ":"), ensure_ascii=True).encode()
    assert len(text) <= n, (len(text), n)
    text += b" " * (n - len(text))
    with open(path, "wb") as f:
        f.write(raw[:8] + text + raw[8 + n:])
    with safe_open(path, "pt") as f:
        assert f.metadata() == meta
        for k, v in tensors.items():
            assert torch.equal(f.get_tensor(k), v), k


def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


REPORT: dict[str, dict] = {}


# --------------------------------------------------------------------------- text families
def text_family(name: str, seed: int, config, cls, tok: Tokenizer, specials: list[int],
                pad_id: int, base: str, ner: bool = False, roberta_positions: bool = False,
                sharded_copy: str | None = None) -> None:
    folder = os.path.join(ROOT, name)
    torch.manual_seed(seed)
    model = cls(config)
    randomize(model, seed)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    assert model.config._attn_implementation == "eager"
    emb_module = getattr(model, base).embeddings.word_embeddings

    extra = save_checkpoint(model, folder, ["config.json", "model.safetensors"])
    tok.save(os.path.join(folder, "tokenizer.json"))
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))

    # --- inputs --------------------------------------------------------------
    if ner:
        sentences = [s for s, _, _ in NER_EXAMPLES]
    else:
        sentences = SEQ_SENTENCES
    encs, input_ids, attention_mask = encode_batch(tok, sentences, pad_id)
    B, L = input_ids.shape
    is_special = torch.zeros_like(input_ids, dtype=torch.bool)
    for s in specials:
        is_special |= input_ids == s
    is_special |= attention_mask == 0
    ref_ids = torch.where(is_special, input_ids, torch.full_like(input_ids, pad_id))
    for e in encs:
        assert e.ids[0] in specials and e.ids[-1] in specials, e.tokens
        assert not any(i in specials for i in e.ids[1:-1]), e.tokens

    rows = torch.arange(B)
    if ner:
        target_token = torch.zeros(B, dtype=torch.int64)
        target = torch.zeros(B, dtype=torch.int64)
        for b, (s, word, cls_id) in enumerate(NER_EXAMPLES):
            start = s.index(word)
            e = encs[b]
            pos = [i for i, (o, m) in enumerate(zip(e.offsets, e.special_tokens_mask))
                   if m == 0 and o[0] == start]
            assert len(pos) == 1, (word, encs[b].tokens)
            target_token[b] = pos[0]
            target[b] = cls_id

        def forward(ids, mask, tt):
            lo = model(input_ids=ids, attention_mask=mask).logits
            return lo[torch.arange(lo.shape[0]), tt]
        extra_args = (attention_mask, target_token)
    else:
        def forward(ids, mask):
            return model(input_ids=ids, attention_mask=mask).logits
        extra_args = (attention_mask,)
        # the class whose logit moves most along Captum's path (see docstring)
        with torch.no_grad():
            ref_emb = emb_module(ref_ids)
            h = emb_module.register_forward_hook(lambda _m, _i, _o: ref_emb)
            try:
                f_start = forward(input_ids, *extra_args)
            finally:
                h.remove()
            target = (forward(input_ids, *extra_args) - f_start).abs().argmax(dim=1)

    with torch.no_grad():
        full_logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        full_logits2 = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert torch.equal(full_logits, full_logits2)
        out_logits = forward(input_ids, *extra_args)
        ref_logits = forward(ref_ids, *extra_args)
        word_emb = emb_module(input_ids)
        assert torch.equal(word_emb, emb_module.weight[input_ids])
        reloaded = cls.from_pretrained(folder, attn_implementation="eager")
        reloaded.eval()
        assert torch.equal(
            reloaded(input_ids=input_ids, attention_mask=attention_mask).logits, full_logits)
        del reloaded

    out: dict[str, torch.Tensor] = {
        "input_ids": input_ids.clone(),
        "attention_mask": attention_mask.clone(),
        "ref_ids": ref_ids.clone(),
        "target": target.clone(),
        "logits": f32(full_logits),
        "ref_logits": f32(ref_logits),
        "word_embeddings": f32(word_emb),
    }
    if ner:
        out["target_token"] = target_token.clone()
        out["token_logits"] = f32(out_logits)
    if roberta_positions:
        cp = model.roberta.embeddings.create_position_ids_from_input_ids
        out["position_ids"] = cp(input_ids, pad_id)
        out["ref_position_ids"] = cp(ref_ids, pad_id)

    # --- Captum ----------------------------------------------------------------
    lig = LayerIntegratedGradients(forward, emb_module)
    a, d = lig.attribute(input_ids, baselines=ref_ids, additional_forward_args=extra_args,
                         target=target, n_steps=50, method="gausslegendre",
                         return_convergence_delta=True)
    out["lig_word_gl50"] = f32(a)
    out["lig_word_gl50_delta"] = f32(d)
    out["lgxa_word"] = f32(LayerGradientXActivation(forward, emb_module).attribute(
        input_ids, additional_forward_args=extra_args, target=target))

    # --- self checks -------------------------------------------------------------
    E = emb_module.weight.shape[1]
    for k, v in out.items():
        if v.dtype.is_floating_point:
            assert torch.isfinite(v).all(), k
    assert out["lig_word_gl50"].shape == (B, L, E)
    assert out["lgxa_word"].shape == (B, L, E)
    f_x = out_logits[rows, target]
    f_r = ref_logits[rows, target]
    attr_sum = out["lig_word_gl50"].sum(dim=(1, 2))
    assert torch.allclose(attr_sum - (f_x - f_r), out["lig_word_gl50_delta"], atol=1e-5)
    # the start of Captum's path: input_ids (so their position ids) with the
    # word embeddings of ref_ids
    with torch.no_grad():
        ref_emb = emb_module(ref_ids)
        h = emb_module.register_forward_hook(lambda _m, _i, _o: ref_emb)
        try:
            f_path0 = forward(input_ids, *extra_args)
        finally:
            h.remove()
    f_p = f_path0[rows, target]
    path_rel = ((attr_sum - (f_x - f_p)).abs() / (f_x - f_p).abs()).max().item()
    assert (f_x - f_p).abs().min() > 1e-2, (f_x, f_p)
    assert path_rel < 0.05, (attr_sum, f_x - f_p)
    captum_rel = (out["lig_word_gl50_delta"].abs() / (f_x - f_r).abs()).max().item()
    if roberta_positions:
        out["path_start_logits"] = f32(f_path0)
        assert not torch.equal(out["position_ids"], out["ref_position_ids"])
    else:
        assert torch.equal(f_path0, ref_logits)
        assert captum_rel < 0.05, (out["lig_word_gl50_delta"], f_x - f_r)

    emb = word_emb.detach().clone().requires_grad_(True)
    h = emb_module.register_forward_hook(lambda _m, _i, _o: emb)
    try:
        with torch.enable_grad():
            lo = forward(input_ids, *extra_args)
            assert torch.equal(lo, out_logits)
            g, = torch.autograd.grad(lo[rows, target].sum(), emb)
    finally:
        h.remove()
    assert torch.allclose(out["lgxa_word"], emb.detach() * g, atol=1e-6, rtol=1e-4)
    pad = attention_mask == 0
    assert pad.any()
    assert out["lgxa_word"][pad].abs().max() == 0
    assert out["lig_word_gl50"][pad].abs().max() == 0

    meta = versions()
    meta.update({
        "family": name,
        "class": cls.__name__,
        "seed": str(seed),
        "sentences": " || ".join(sentences),
        "forward": ("model(input_ids, attention_mask).logits[arange(n), target_token]"
                    if ner else "model(input_ids, attention_mask).logits"),
        "layer": f"model.{base}.embeddings.word_embeddings",
    })
    save_golden(out, os.path.join(folder, "golden.safetensors"), meta)

    if sharded_copy is not None:
        sfolder = os.path.join(ROOT, sharded_copy)
        sextra = save_checkpoint(model, sfolder, ["config.json", "model.safetensors.index.json"],
                                 max_shard_size="50KB")
        shutil.copy(os.path.join(folder, "tokenizer.json"), os.path.join(sfolder, "tokenizer.json"))
        index = json.load(open(os.path.join(sfolder, "model.safetensors.index.json")))
        shards = sorted(set(index["weight_map"].values()))
        assert len(shards) >= 2, shards
        assert sorted(f for f in os.listdir(sfolder) if f.startswith("model-")) == shards
        with torch.no_grad():
            r = cls.from_pretrained(sfolder, attn_implementation="eager").eval()
            assert torch.equal(r(input_ids=input_ids, attention_mask=attention_mask).logits,
                               full_logits)
        REPORT[sharded_copy] = {"extra_files_deleted": sextra, "shards": shards,
                                "index": index}

    REPORT[name] = {
        "extra_files_deleted": extra,
        "tokens": [e.tokens for e in encs],
        "vocab_tokenizer": tok.get_vocab_size(),
        "vocab_model": config.vocab_size,
        "L": L,
        "logits": out_logits.tolist(),
        "target": target.tolist(),
        "F(x)-F(ref)": (f_x - f_r).tolist(),
        "F(x)-F(path start)": (f_x - f_p).tolist(),
        "lig_delta": out["lig_word_gl50_delta"].tolist(),
        "lig_delta_rel_captum": captum_rel,
        "lig_path_rel": path_rel,
        "golden_keys": {k: (str(v.dtype), tuple(v.shape)) for k, v in out.items()},
    }
    if ner:
        REPORT[name]["target_token"] = target_token.tolist()
    if roberta_positions:
        REPORT[name]["position_ids"] = out["position_ids"].tolist()
        REPORT[name]["ref_position_ids"] = out["ref_position_ids"].tolist()


# --------------------------------------------------------------------------- vit
def vit_family(seed: int) -> None:
    from transformers import ViTImageProcessor

    name = "vit"
    folder = os.path.join(ROOT, name)
    config = ViTConfig(image_size=16, patch_size=4, num_channels=3, num_labels=3,
                       id2label=VIT_LABELS, label2id={v: k for k, v in VIT_LABELS.items()},
                       attn_implementation="eager", **COMMON)
    torch.manual_seed(seed)
    model = ViTForImageClassification(config)
    randomize(model, seed)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    assert model.config._attn_implementation == "eager"
    extra = save_checkpoint(model, folder, ["config.json", "model.safetensors"])

    proc = ViTImageProcessor(size={"height": 16, "width": 16},
                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    tmp = os.path.join(ROOT, "_vit_processor_tmp")
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    proc.save_pretrained(tmp)
    pextra = [f for f in sorted(os.listdir(tmp)) if f != "preprocessor_config.json"]
    shutil.copy(os.path.join(tmp, "preprocessor_config.json"),
                os.path.join(folder, "preprocessor_config.json"))
    shutil.rmtree(tmp)

    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    target = torch.tensor([1, 0], dtype=torch.int64)

    def model_fn(x):
        return model(pixel_values=x).logits

    with torch.no_grad():
        logits = model_fn(pixel_values)
        assert torch.equal(logits, model_fn(pixel_values))
        r = ViTForImageClassification.from_pretrained(folder, attn_implementation="eager").eval()
        assert torch.equal(r(pixel_values=pixel_values).logits, logits)
        del r
        f0 = model_fn(torch.zeros_like(pixel_values))

    out = {
        "pixel_values": f32(pixel_values),
        "target": target.clone(),
        "logits": f32(logits),
    }
    out["saliency"] = f32(Saliency(model_fn).attribute(pixel_values, target=target, abs=False))
    a, d = IntegratedGradients(model_fn).attribute(
        pixel_values, baselines=0, target=target, n_steps=50, method="gausslegendre",
        return_convergence_delta=True)
    out["ig_gl50"] = f32(a)
    out["ig_gl50_delta"] = f32(d)

    rows = torch.arange(2)
    x = pixel_values.clone().requires_grad_(True)
    with torch.enable_grad():
        gr, = torch.autograd.grad(model_fn(x)[rows, target].sum(), x)
    assert torch.allclose(out["saliency"], gr, atol=1e-7, rtol=1e-5)
    diff = logits[rows, target] - f0[rows, target]
    assert diff.abs().min() > 1e-2, (diff, logits, f0)
    assert torch.allclose(a.sum(dim=(1, 2, 3)) - diff, d, atol=1e-5)
    rel = (d.abs() / diff.abs()).max().item()
    assert rel < 0.05, (d, diff)

    meta = versions()
    meta.update({"family": name, "class": "ViTForImageClassification", "seed": str(seed),
                 "forward": "model(pixel_values).logits"})
    save_golden(out, os.path.join(folder, "golden.safetensors"), meta)
    REPORT[name] = {
        "extra_files_deleted": extra,
        "processor_extra_files": pextra,
        "processor_class": type(proc).__name__,
        "logits": logits.tolist(),
        "F(x)-F(0)": diff.tolist(),
        "ig_delta": d.tolist(),
        "ig_delta_rel": rel,
        "golden_keys": {k: (str(v.dtype), tuple(v.shape)) for k, v in out.items()},
    }


# --------------------------------------------------------------------------- main
def main() -> None:
    warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    try:
        from transformers.utils import logging as tlog
        tlog.disable_progress_bar()
    except Exception:
        pass
    os.makedirs(ROOT, exist_ok=True)

    wp, uni = frozen_vocab_tokenizers(retrain="--retrain" in sys.argv[1:])
    bpe = bytelevel_bpe_tokenizer()
    a, b = bytelevel_bpe_tokenizer(), bytelevel_bpe_tokenizer()
    assert a.to_str() == b.to_str() == bpe.to_str()
    V_wp, V_bpe, V_uni = wp.get_vocab_size(), bpe.get_vocab_size(), uni.get_vocab_size()

    def lab(d):
        return dict(id2label=d, label2id={v: k for k, v in d.items()})

    bert_kw = dict(vocab_size=V_wp + 8, max_position_embeddings=64, type_vocab_size=2,
                   pad_token_id=0, hidden_act="gelu", attn_implementation="eager", **COMMON)
    text_family("bert", 1, BertConfig(num_labels=3, **lab(LABELS3), **bert_kw),
                BertForSequenceClassification, wp, [2, 3, 0], 0, "bert",
                sharded_copy="bert_sharded")
    text_family("bert_ner", 2, BertConfig(num_labels=5, **lab(NER_LABELS), **bert_kw),
                BertForTokenClassification, wp, [2, 3, 0], 0, "bert", ner=True)
    text_family("distilbert", 3,
                DistilBertConfig(vocab_size=V_wp, max_position_embeddings=64, dim=32,
                                 n_layers=2, n_heads=4, hidden_dim=37, pad_token_id=0,
                                 activation="gelu", num_labels=2, **lab(LABELS2),
                                 attn_implementation="eager"),
                DistilBertForSequenceClassification, wp, [2, 3, 0], 0, "distilbert")
    rob_kw = dict(max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
                  bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, hidden_act="gelu",
                  attn_implementation="eager", **COMMON)
    text_family("roberta", 4,
                RobertaConfig(vocab_size=V_bpe, num_labels=3, **lab(LABELS3), **rob_kw),
                RobertaForSequenceClassification, bpe, [0, 2, 1], 1, "roberta",
                roberta_positions=True)
    text_family("xlm_roberta", 5,
                XLMRobertaConfig(vocab_size=V_uni, num_labels=2, **lab(LABELS2), **rob_kw),
                XLMRobertaForSequenceClassification, uni, [0, 2, 1], 1, "roberta",
                roberta_positions=True)
    text_family("electra", 6,
                ElectraConfig(vocab_size=V_wp, embedding_size=16, max_position_embeddings=64,
                              type_vocab_size=2, pad_token_id=0, hidden_act="gelu",
                              num_labels=2, **lab(LABELS2), attn_implementation="eager",
                              **COMMON),
                ElectraForSequenceClassification, wp, [2, 3, 0], 0, "electra")
    vit_family(7)

    # --- summary ---------------------------------------------------------------------
    for name in sorted(os.listdir(ROOT)):
        folder = os.path.join(ROOT, name)
        size = folder_bytes(folder)
        assert size <= MAX_FOLDER_BYTES, (name, size)
        print(f"{name}/  {size} bytes")
        for f in sorted(os.listdir(folder)):
            p = os.path.join(folder, f)
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
            print(f"    {f:42s} {os.path.getsize(p):8d}  sha256 {h}")
    print(json.dumps(REPORT, indent=1, default=str))


if __name__ == "__main__":
    main()
