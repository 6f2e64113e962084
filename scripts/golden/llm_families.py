"""Tiny random Hugging Face decoder-only (causal LM) checkpoints of six
families, with golden logits, greedy generations, Captum LLM attributions and
LXT AttnLRP / CP-LRP relevances, for the Rust loaders and LLM explainers.

Produces, under crates/models/tests/data/hf/ (one folder per variant):
    gpt2/     GPT2LMHeadModel      n_embd 32, n_layer 2, n_head 4, n_inner 128
              (4 * 32), n_positions 64, gelu_new, layer_norm_epsilon 1e-5,
              tied lm_head (model.safetensors has no lm_head.weight)
    llama/    LlamaForCausalLM     hidden 32, 2 layers, 4 heads, 2 KV heads
              (GQA, head_dim 8), intermediate 48, silu, rope_theta 10000 (no
              scaling), rms_norm_eps 1e-5, max_position_embeddings 64, untied
              lm_head, attention_bias = mlp_bias = false
    llama3/   LlamaForCausalLM     as llama, but rope_scaling {"rope_type":
              "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
              (with head_dim 8 and theta 10000 the 4 rotary frequencies fall in
              all three llama3 bands: wavelength 6.3 is smoothed, 63/628/6283
              are divided by 8), tied lm_head, Llama-3 style special tokens,
              eos_token_id a LIST [<|end_of_text|>, <|eot_id|>] (as Llama 3.1
              Instruct) and a Llama-3 chat_template in tokenizer_config.json
    mistral/  MistralForCausalLM   hidden 32, 2 layers, 4 heads, 2 KV heads,
              intermediate 48, rope_theta 10000, rms_norm_eps 1e-5,
              sliding_window null, untied lm_head
    qwen2/    Qwen2ForCausalLM     hidden 32, 2 layers, 4 heads, 2 KV heads,
              intermediate 48, q/k/v projections WITH bias (o_proj without),
              rope_theta 1e6, rms_norm_eps 1e-6, tied embeddings,
              use_sliding_window false, vocab_size 400 > tokenizer's 387 (an
              embedding table padded beyond the tokenizer, as real Qwen
              checkpoints have), ChatML chat_template
    qwen3/    Qwen3ForCausalLM     hidden 32, 2 layers, 4 heads, 2 KV heads,
              head_dim 16 (!= hidden/heads = 8, so q_proj is 32 -> 64, k_proj
              and v_proj 32 -> 32, o_proj 64 -> 32), q_norm/k_norm RMSNorm over
              head_dim 16, intermediate 48, rope_theta 1e6, rms_norm_eps 1e-6,
              attention_bias false, UNtied lm_head, vocab_size 400 > 387,
              ChatML chat_template
Each folder holds exactly config.json, generation_config.json, model.safetensors
(float32, written by transformers' save_pretrained(safe_serialization=True), so
with the key names of real hub checkpoints), tokenizer.json, tokenizer_config.json,
golden.safetensors and golden.json.  Every other file that transformers writes
is deleted (the script prints their names).

config.json: as save_pretrained writes it (transformers 5 spells the rotary
settings as one dict "rope_parameters": {"rope_type", "rope_theta", ...}),
EXCEPT for llama, llama3 and qwen2, whose config.json is rewritten to the
pre-v5 spelling found in the hub checkpoints (Llama 3.x, Qwen2.5): top-level
"rope_theta" plus, for llama3 only, "rope_scaling" {"rope_type": "llama3",
"factor", "low_freq_factor", "high_freq_factor",
"original_max_position_embeddings"} ("rope_parameters" removed).  mistral and
qwen3 keep "rope_parameters".  So a loader must read both spellings; the script
asserts that transformers reads the rewritten files back to the same
rope_parameters and the same logits.  bos/eos/pad ids: see TOKENIZERS below;
generation_config.json carries bos_token_id, eos_token_id (llama3: the list)
and pad_token_id.

Models: built by transformers from the config, torch.manual_seed(seed) right
before construction, attn_implementation="eager", eval mode, float32.  Then every
parameter is redrawn from a torch.Generator seeded with the same seed (module
order of named_modules(); a tied lm_head keeps the embedding's draw), so that no
tensor is a constant a broken loader could get right by accident:
    Linear weight                 N(0, 1/fan_in)      bias  N(0, 0.1^2)
    GPT-2 Conv1D weight (in,out)  N(0, 1/in)          bias  N(0, 0.1^2)
    LayerNorm weight              1 + N(0, 0.1^2)     bias  N(0, 0.1^2)
    *RMSNorm weight (incl. qwen3 q_norm/k_norm)  1 + N(0, 0.1^2)
    Embedding weight (wte, wpe, embed_tokens, padded rows included)  N(0, 0.5^2)
Seeds: gpt2 11, llama 12, llama3 13, mistral 14, qwen2 15, qwen3 16.

TOKENIZERS (the tokenizers library, byte-level BPE learnt with
BpeTrainer(vocab_size=384, min_frequency=1, initial_alphabet = the 256
byte-level symbols) from CORPUS, 40 short English sentences written below;
the trainer is deterministic and runs every time; decoder ByteLevel; saved with
Tokenizer.save; no padding/truncation set).  tokenizer_config.json is written
by hand in the style of the hub files ("tokenizer_class":
"PreTrainedTokenizerFast", the special-token strings, model_max_length 64,
chat_template where stated); the script asserts that transformers'
AutoTokenizer loads the folder and encodes like tokenizer.json.
    gpt2: pre-tokenizer ByteLevel(add_prefix_space=False) (GPT-2's regex),
        post-processor ByteLevel(trim_offsets=False), no BOS added;
        384 learnt tokens + <|endoftext|> = 384 appended -> 385.
        bos = eos = pad = 384.
    llama, mistral (the same tokenizer.json): GPT-2 regex ByteLevel
        pre-tokenizer, trainer specials <unk>=0 <s>=1 </s>=2 (Llama-2 layout),
        384 tokens; post-processor TemplateProcessing single "<s> $A",
        pair "<s> $A <s>:1 $B:1" (BOS added by encode()).  bos 1, eos 2,
        pad (generation_config, batch) 2.
    llama3: pre-tokenizer Sequence[Split(Llama-3 regex, "isolated"),
        ByteLevel(add_prefix_space=False, use_regex=False)]; 384 learnt tokens +
        <|begin_of_text|>=384 <|end_of_text|>=385 <|start_header_id|>=386
        <|end_header_id|>=387 <|eot_id|>=388 -> 389; post-processor
        Sequence[ByteLevel(trim_offsets=False), TemplateProcessing
        "<|begin_of_text|> $A" / "<|begin_of_text|> $A <|begin_of_text|>:1 $B:1"].
        bos 384, eos [385, 388], pad 385.
    qwen2, qwen3 (the same tokenizer.json): normalizer NFC, pre-tokenizer
        Sequence[Split(Qwen2 regex, "isolated"), ByteLevel(add_prefix_space=False,
        use_regex=False)]; 384 learnt + <|endoftext|>=384 <|im_start|>=385
        <|im_end|>=386 -> 387; post-processor ByteLevel(trim_offsets=False), no
        BOS added.  bos = eos = pad = 384 (as Qwen2.5 base).  Model vocab 400:
        ids 387..399 are embedding/lm_head rows with no token.
    Chat templates (in tokenizer_config.json "chat_template"): llama3 the
    original Llama-3-Instruct template (bos_token + per message
    "<|start_header_id|>{role}<|end_header_id|>\\n\\n{content|trim}<|eot_id|>",
    then "<|start_header_id|>assistant<|end_header_id|>\\n\\n" when
    add_generation_prompt); qwen2/qwen3 the original Qwen2 ChatML template
    (default system message "You are a helpful assistant." when the first
    message is not a system one).

INPUTS (strings; token strings per variant are in golden.json):
    PROMPT        "The old cat slept on the warm mat by the"
    BATCH_PROMPTS ["The old cat slept on the warm mat by the", "A small dog ran"]
    CHAT (llama3: [system "You are a helpful assistant.", user "Where did the
    cat sleep?"]; qwen2/qwen3: [user "Where did the cat sleep?"]),
    rendered with add_generation_prompt=True.

golden.safetensors (float32 unless said; T = prompt length in tokens incl. the
BOS for llama/llama3/mistral; V = model vocab_size; K = 8 target tokens;
F = number of Captum features = T minus the BOS for llama/llama3/mistral, T for
the others; H = hidden size 32):
    prompt_ids   int64 (1,T)  PROMPT encoded with the folder's tokenizer.json
                 (add_special_tokens=True, i.e. with BOS for the llama family)
    logits       (1,T,V)  model(input_ids=prompt_ids).logits (no attention mask,
                 position ids 0..T-1)
    greedy_ids   int64 (1,T+K)  model.generate(prompt_ids, attention_mask=ones,
                 do_sample=False, max_new_tokens=8): the prompt followed by 8
                 new tokens.  EOS stopping is ON (the generation_config's
                 eos_token_id) but never triggered: the script asserts that no
                 EOS was produced and that an argmax loop of full forwards
                 (no KV cache) gives the same ids.  NOTE: the tied variants
                 (gpt2, llama3, qwen2) repeat tokens (llama3: one token 8 times),
                 because with a tied random lm_head the last token's own
                 embedding dominates the logits; compare greedy_logits too.
    greedy_logits (1,K,V) logits of that argmax loop: row k = logits at the
                 last position of model(greedy_ids[:, :T+k]); argmax = the
                 k-th new token
    batch_ids    int64 (2,L) BATCH_PROMPTS, each encoded as prompt_ids,
                 LEFT-padded with the pad id above to the longer length L
    batch_mask   int64 (2,L) 1 on real tokens, 0 on padding
    batch_position_ids int64 (2,L) what generate() uses for a left-padded
                 batch in transformers 5: cumsum(mask) - 1, then 0 where mask is
                 0 (so the real tokens of each row have positions 0..len-1)
    logits_batch (2,L,V) model(input_ids=batch_ids, attention_mask=batch_mask,
                 position_ids=batch_position_ids).logits.  Only positions with
                 mask 1 are meaningful (asserted equal, 1e-5, to the unpadded
                 single-prompt forwards); rows at padded positions are whatever
                 eager attention gives for a query that sees only masked keys:
                 do not compare them.
    chat_ids     int64 (1,C) (llama3, qwen2, qwen3 only) the rendered chat
                 template encoded with add_special_tokens=False (the llama3
                 template itself writes <|begin_of_text|>); asserted equal to
                 AutoTokenizer.apply_chat_template(..., tokenize=True)
  Captum 0.9 (captum.attr LLMAttribution / LLMGradientAttribution with
  TextTokenInput(PROMPT, tokenizer, baselines=captum_baseline_id,
  skip_tokens=[BOS id] for llama/llama3/mistral, none for the others), where
  tokenizer = AutoTokenizer.from_pretrained(folder) and the target is the
  greedy continuation passed as a tensor: target = greedy_ids[0, T:], so the
  K target tokens are "forced" (teacher forcing)):
    captum_target_ids   int64 (K,)  = greedy_ids[0, T:]
    captum_feature_ids  int64 (F,)  the prompt ids Captum attributes to
                        (prompt_ids without the BOS for the llama family)
    captum_baseline_id  int64 (1,)  the token id that replaces a prompt token
                        in FeatureAblation and in the token-baseline IG:
                        <unk> = 0 for llama/mistral, <|end_of_text|> = 385 for
                        llama3, <|endoftext|> = 384 for gpt2/qwen2/qwen3
    captum_target_logprobs (K,)  s_k(x) = log_softmax(model(cat(prompt_ids,
                        y_<k)).logits[0, -1])[y_k], y = captum_target_ids: THE
                        score every Captum method here attributes (Captum's
                        LLM wrappers only support the log-probability of each
                        target token; LLMAttribution's default attr_target
                        "log_prob").  For step k the model input is the prompt
                        followed by the previously generated (forced) targets
                        y_<k; those y_<k are NEVER features: their embeddings
                        are held at their actual value (in IG their baseline is
                        themselves, so their attribution is exactly 0) and
                        Captum cuts their columns off.  Hence token_attr is
                        (K,F), row k = attribution of s_k to the F prompt
                        tokens; seq_attr (F,) = attribution of sum_k s_k =
                        token_attr.sum(0) (for all three methods; asserted).
    captum_ig_token_attr (K,F), captum_ig_seq_attr (F,)
        LLMGradientAttribution(LayerIntegratedGradients(model,
        model.get_input_embeddings()), tokenizer).attribute(inp, target=y,
        n_steps=32) with Captum's default method="gausslegendre", with a ZERO
        EMBEDDING baseline at every feature position (the BOS, when present,
        and y_<k stay at their actual embeddings).  Captum's LIG takes its
        baseline in token-id space, so the zero embedding is obtained with
        TextTokenInput(baselines=<a sentinel id not in the prompt or targets>)
        plus a forward hook on the embedding module that zeroes the rows whose
        id is the sentinel (the hook leaves every other forward unchanged).
        Definition (asserted equal, 2e-5, to a direct implementation):
            x = embeddings of cat(prompt, y_<k) (T+k, H); b = x with the
            feature rows set to 0; a_i, w_i = Gauss-Legendre nodes/weights of
            numpy.polynomial.legendre.leggauss(32) mapped to [0,1]
            (a = (u+1)/2, w = w_u/2);
            attr[t] = sum_h (x-b)[t,h] * sum_i w_i dS_k/de[t,h] at e = b + a_i (x-b),
            S_k(e) = log_softmax(model(inputs_embeds=e).logits[0,-1])[y_k];
            token_attr[k] = attr at the feature positions.
    captum_ig_baseline_logprobs (K,)  S_k at the baseline b (zero feature rows)
    captum_ig_delta (K,)  token_attr.sum(1) - (s_k(x) - S_k(b)) (completeness
                          gap of the 32-node quadrature).  Large (up to ~8 for
                          qwen2) for every RMSNorm family: the first layer's
                          RMSNorm(a e) is constant for a >> sqrt(eps)/rms(e) and
                          drops to 0 only at a = 0, so the path integrand is a
                          spike near a = 0 that 32 nodes cannot resolve.  It is
                          what Captum computes (the goldens match it); a Rust
                          implementation must use the same 32 Gauss-Legendre
                          nodes to match.  gpt2 (positions not zeroed) and the
                          token baseline below have gaps < 1e-3.
    captum_ig_tokbase_token_attr (K,F), captum_ig_tokbase_seq_attr (F,)
        the same LIG, but with Captum's own baseline semantics: the feature
        rows of b are the embedding of captum_baseline_id (no hook).
    captum_ig_tokbase_baseline_logprobs (K,), captum_ig_tokbase_delta (K,)
        S_k at that baseline and the completeness gap, as above.
    captum_gxi_token_attr (K,F), captum_gxi_seq_attr (F,)
        LLMGradientAttribution(LayerGradientXActivation(model,
        model.get_input_embeddings()), tokenizer).attribute(inp, target=y):
        token_attr[k, f] = sum_h x[t_f,h] * dS_k/de[t_f,h] at e = x
        (gradient x input on the embedding output, summed over the hidden dim).
    captum_ablation_token_attr (K,F), captum_ablation_seq_attr (F,)
        LLMAttribution(FeatureAblation(model), tokenizer).attribute(inp,
        target=y, use_cached_outputs=False) (otherwise defaults: attr_target
        "log_prob", forward_in_tokens=True, one feature ablated at a time):
        token_attr[k, f] = s_k(x) - s_k(x with prompt token f replaced by
        captum_baseline_id), targets y_<k still forced; seq_attr[f] = the same
        for sum_k s_k.  Asserted equal (2e-5) to a direct teacher-forced
        implementation with one forward of cat(prompt', y).
        use_cached_outputs=False because Captum 0.9's default cached path is
        broken with transformers 5: it never advances cache_position (stays
        0..T-1) while feeding the whole grown input_ids again with the cache,
        so gpt2 raises IndexError in wpe and the RoPE families silently return
        wrong log-probabilities from the second target token on (llama: 1.56
        max abs difference in token_attr).  Without the cache every step is a
        full forward of cat(prompt', y_<k), which is what the goldens hold.
  Captum's result.output_tokens (display strings) is replaced by
  convert_ids_to_tokens in this script: Captum's own helper raises IndexError
  when the last target token is a lone byte of a multi-byte UTF-8 character.
  This touches no attribution.
  LXT (lxt 2.1, run in a separate venv, see below), for every variant
  (gpt2, llama, llama3, qwen2, qwen3 with lxt's own maps; mistral with a
  patch_map assembled from the same lxt functions, since lxt has none for
  Mistral):
    lxt_target_id     int64 (1,)  argmax of logits[0, T-1, :] (the next token
                      after the prompt)
    lxt_logit         (1,)  that logit, from the LXT-patched forward
    lxt_attnlrp_relevance      (T,)  AttnLRP relevance of the input embeddings
    lxt_attnlrp_relevance_dims (T,H) per hidden dimension
    lxt_cplrp_relevance        (T,)  the same with lxt's cp_LRP maps (CP-LRP)
    lxt_cplrp_relevance_dims   (T,H)
    lxt_attnlrp_layer_input_relevance, lxt_cplrp_layer_input_relevance
                      (n_layers+1,) = (3,): sum of (h * h.grad) of the hidden
                      state entering decoder layer 0, layer 1 and the final
                      norm (layer 0's is the relevance sum above, except gpt2,
                      where it also holds the position embeddings' share); the
                      last one equals lxt_logit (final norm + lm_head are
                      linear under the rules), each attention block loses some
                      under AttnLRP, none under CP-LRP for bias-free models
    Computed exactly as LXT's own efficient examples (e.g. its
    examples/quantized_qwen3.py): monkey_patch(<transformers modeling module>,
    patch_map) BEFORE the forward; e = model.get_input_embeddings()(prompt_ids)
    (all T positions, BOS included); logits = model(inputs_embeds =
    e.requires_grad_(), use_cache=False).logits; m = logits[0,-1].max();
    m.backward() (seed gradient 1); relevance_dims = (e * e.grad)[0];
    relevance = relevance_dims.sum(-1).  The forward of the patched model equals
    the unpatched one (asserted 1e-5 against `logits`).
    Rules of lxt.efficient (AttnLRP; every one an autograd substitution in a
    Gradient x Input framework, linear layers keep their plain gradient =
    epsilon-LRP with epsilon -> 0, bias terms absorb relevance, residual adds
    and RoPE (linear in q, k) plain gradient):
      * RMSNorm (LlamaRMSNorm, MistralRMSNorm, Qwen2RMSNorm, Qwen3RMSNorm incl.
        q_norm/k_norm) -> patches.rms_norm_forward: weight * x *
        stop_gradient(rsqrt(mean(x^2) + eps))   (identity rule: the
        normalisation factor is held constant)
      * GPT-2 LayerNorm -> patches.layer_norm_forward: (x - mean(x)) /
        stop_gradient(sqrt(var(x) + eps)) * weight + bias (the mean IS
        differentiated, the std is held constant)
      * gated MLP (Llama/Mistral/Qwen) -> patches.gated_mlp_forward:
        down(divide_gradient(identity_rule_implicit(act, gate(x)) * up(x), 2)):
        identity rule on SiLU (backward multiplies by act(z)/(z + 1e-10)) and
        the uniform rule on the element-wise product (gradient halved, both
        factors still differentiated)
      * GPT-2 MLP -> lxt.efficient.models.gpt2.mlp_forward: identity rule on
        gelu_new between c_fc and c_proj
      * attention (eager_attention_forward of the modeling module wrapped by
        patches.patch_attention): divide_gradient(query, 4),
        divide_gradient(key, 4), divide_gradient(value, 2) (uniform rule on
        the two matmuls), softmax keeps its true gradient (AttnLRP's softmax
        rule)
      * Dropout -> identity
    CP-LRP (lxt's cp_LRP maps): the same, except attention uses
    patches.patch_cp_attention (query and key detached: attention weights held
    constant, value plain gradient) and the gated MLP uses
    patches.cp_gated_mlp_forward (gate branch detached, no division by 2); GPT-2's
    cp_LRP map keeps the identity rule on gelu_new.
    Conservation (sum of relevance vs lxt_logit) is printed and stored in
    golden.json ("lxt"); it is exact (up to the 1e-10 of the identity rule and
    float32) only for CP-LRP on bias-free models, approximate for AttnLRP (the
    softmax rule is not conservative) and not expected for models with biases
    (gpt2: every Conv1D/LayerNorm bias and the position embeddings wpe take a
    share; qwen2: the q/k/v biases).

golden.json: the strings (prompt, batch prompts, chat text), their token
strings, the greedy/target token strings, the Captum baseline token, the LXT
conservation numbers, and the versions.

LXT VENV.  lxt 2.1 does not work with transformers 5: `import lxt.efficient`
fails (lxt/efficient/models/bert.py imports transformers.modeling_attn_mask_utils,
removed in v5), and even with that module stubbed, patch_attention replaces the
modeling module's ALL_ATTENTION_FUNCTIONS (an AttentionInterface) by a plain
dict, so every v5 attention forward fails on `.get_interface`.  LXT therefore
runs in a child process of this script (`--lxt-child`) under a second venv
with the versions LXT states it was tested with:

    python3.11 -m venv /work/venv-lxt
    /work/venv-lxt/bin/pip install torch==2.6.0 torchvision==0.21.0 \\
        transformers==4.52.4 lxt==2.1 safetensors numpy

(override its interpreter with LXT_PYTHON=...).  The child loads each saved
folder with transformers 4.52.4 (for mistral/qwen3, whose config.json has the
v5 "rope_parameters", the child copies rope_theta/rope_scaling into the config
before building the model), asserts its unpatched logits equal `logits` (1e-5),
patches, and hands the relevances back through a temporary safetensors file.

Run from the repository root:

    /work/venv/bin/python scripts/golden/llm_families.py

(the parent needs torch, captum 0.9, transformers 5, tokenizers, numpy,
safetensors, jinja2; generated with torch 2.15.0, captum 0.9.0, transformers
5.24.0, tokenizers 0.23.3, safetensors 0.8.0; the LXT child with torch 2.6.0,
transformers 4.52.4, lxt 2.1).  float32, CPU, torch.set_num_threads(1),
deterministic algorithms; the versions are recorded in golden.safetensors'
metadata and golden.json (no date, safetensors header rewritten in sorted
order, so that a rerun is byte-identical).  Before writing, the script asserts:
logits equal a second forward; AutoModelForCausalLM.from_pretrained(folder)
reproduces `logits` to 1e-6 (and the rope parameters); generate = argmax loop;
no EOS in the greedy continuation; real-token rows of logits_batch = single
forwards; every Captum result equals its direct re-implementation; LXT's
patched forward = `logits`; the whole of the new folders <= 3 MB.
"""

import os
import sys

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ROOT = os.path.join("crates", "models", "tests", "data", "hf")
VARIANTS = ["gpt2", "llama", "llama3", "mistral", "qwen2", "qwen3"]
MAX_TOTAL_BYTES = 3 * 1024 * 1024
LXT_PYTHON = os.environ.get("LXT_PYTHON", "/work/venv-lxt/bin/python")

PROMPT = "The old cat slept on the warm mat by the"
BATCH_PROMPTS = [PROMPT, "A small dog ran"]
N_NEW = 8
IG_STEPS = 32

CORPUS = [
    "The old cat slept on the warm mat by the fire.",
    "A small dog ran across the green field to the river.",
    "The children played in the park until the sun went down.",
    "She opened the window and the cold wind came into the room.",
    "My brother reads a book every night before he goes to sleep.",
    "The farmer planted corn and beans in the spring.",
    "We walked to the market and bought bread, cheese and apples.",
    "The little bird sang a song on the branch of the tall tree.",
    "He found an old map in the box under his bed.",
    "The train was late, so we waited at the station for an hour.",
    "Where did the cat sleep last night?",
    "The cat slept on the mat by the door.",
    "Rain fell all day and the streets were wet and quiet.",
    "Our teacher told us a story about a brave knight.",
    "The boat sailed slowly along the coast of the island.",
    "I like to drink warm milk with honey when it is cold.",
    "The mouse ran under the table when the cat woke up.",
    "They built a small house of wood near the lake.",
    "The moon was bright and the stars were shining.",
    "Grandmother baked a cake for the birthday party.",
    "The dog barked at the postman every morning.",
    "You are a helpful assistant.",
    "Please answer the question in one short sentence.",
    "The city was busy, with cars and people everywhere.",
    "A cold river runs through the old town.",
    "The king and the queen lived in a large castle.",
    "He painted the fence white and the door blue.",
    "The students wrote their names at the top of the page.",
    "After dinner we sat by the fire and told stories.",
    "The snow covered the hills and the roofs of the houses.",
    "She carried a basket of eggs to her neighbour.",
    "The clock on the wall struck twelve.",
    "Two cats and three dogs lived on the farm.",
    "The road to the village was long and narrow.",
    "The baby laughed when the puppy licked her hand.",
    "It was 7 o'clock and the shop was still open.",
    "Where is the key? It's on the shelf, isn't it?",
    "The warm bread smelled good in the small kitchen.",
    "The fisherman caught a big fish in the morning.",
    "They're sure we'll arrive before the old bridge closes.",
]

CHAT_LLAMA3 = [{"role": "system", "content": "You are a helpful assistant."},
               {"role": "user", "content": "Where did the cat sleep?"}]
CHAT_QWEN = [{"role": "user", "content": "Where did the cat sleep?"}]

LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


# =========================================================================== shared helpers
def save_golden(tensors, path, meta):
    """safetensors' save_file, then its JSON header rewritten with the metadata
    keys and the tensor entries in sorted order (save_file orders the metadata
    by a hash map, which would make every run's file differ)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
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


# =========================================================================== LXT child
def lxt_child(job_path: str, out_path: str, rules: str) -> None:
    """Runs under the LXT venv (transformers 4.52.4, lxt 2.1).  job: {variant:
    {"folder", "prompt_ids"}}; writes <variant>/<name> tensors to out_path."""
    import transformers
    from functools import partial
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.gpt2 import modeling_gpt2
    from transformers.models.llama import modeling_llama
    from transformers.models.mistral import modeling_mistral
    from transformers.models.qwen2 import modeling_qwen2
    from transformers.models.qwen3 import modeling_qwen3

    import lxt
    import lxt.efficient.models.gpt2 as lxt_gpt2
    import lxt.efficient.models.llama as lxt_llama
    import lxt.efficient.models.qwen2 as lxt_qwen2
    import lxt.efficient.models.qwen3 as lxt_qwen3
    from lxt.efficient import monkey_patch
    from lxt.efficient.patches import (cp_gated_mlp_forward, dropout_forward,
                                       gated_mlp_forward, patch_attention,
                                       patch_cp_attention, patch_method, rms_norm_forward)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    job = json.load(open(job_path))

    mistral_maps = {
        "attnlrp": {
            modeling_mistral.MistralMLP: partial(patch_method, gated_mlp_forward),
            modeling_mistral.MistralRMSNorm: partial(patch_method, rms_norm_forward),
            nn.Dropout: partial(patch_method, dropout_forward),
            modeling_mistral: patch_attention,
        },
        "cplrp": {
            modeling_mistral.MistralMLP: partial(patch_method, cp_gated_mlp_forward),
            modeling_mistral.MistralRMSNorm: partial(patch_method, rms_norm_forward),
            nn.Dropout: partial(patch_method, dropout_forward),
            modeling_mistral: patch_cp_attention,
        },
    }
    attr = {"attnlrp": "attnLRP", "cplrp": "cp_LRP"}[rules]
    patches = [
        (modeling_gpt2, getattr(lxt_gpt2, attr)),
        (modeling_llama, getattr(lxt_llama, attr)),
        (modeling_qwen2, getattr(lxt_qwen2, attr)),
        (modeling_qwen3, getattr(lxt_qwen3, attr)),
        (modeling_mistral, mistral_maps[rules]),
    ]

    # load all models and record the unpatched logits first (patching is global)
    models, out, report = {}, {}, {}
    for name, spec in job.items():
        folder = spec["folder"]
        cfg = AutoConfig.from_pretrained(folder)
        raw = json.load(open(os.path.join(folder, "config.json")))
        if "rope_parameters" in raw:  # transformers 5 spelling: 4.52 ignores it
            rp = dict(raw["rope_parameters"])
            cfg.rope_theta = rp.pop("rope_theta")
            cfg.rope_scaling = None if rp.get("rope_type") == "default" else rp
        model = AutoModelForCausalLM.from_pretrained(
            folder, config=cfg, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        ids = torch.tensor(spec["prompt_ids"], dtype=torch.int64)
        with torch.no_grad():
            out[f"{name}/unpatched_logits"] = model(input_ids=ids, use_cache=False).logits.contiguous()
        # plain gradient x input of the same logit, for the report only
        e = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        lo = model(inputs_embeds=e, use_cache=False).logits
        lo[0, -1].max().backward()
        report[name] = {"plain_gxi_relevance": (e * e.grad)[0].sum(-1).tolist()}
        models[name] = (model, ids)

    wrapper = {"attnlrp": "wrap_attention_forward.<locals>.attention_forward",
               "cplrp": "cp_wrap_attention_forward.<locals>.cp_attention_forward"}[rules]
    for module, pmap in patches:
        monkey_patch(module, pmap, verbose=False)
    for module, pmap in patches:  # every patch took effect, with the intended rules
        for target, patch in pmap.items():
            if isinstance(target, type):
                assert target.forward is patch.args[0], (target, patch)
            else:
                assert target.eager_attention_forward.__qualname__ == wrapper, target

    for name, (model, ids) in models.items():
        e = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        extra = {}
        # relevance entering each decoder layer and the final norm
        base = model.transformer if name == "gpt2" else model.model
        blocks = list(base.h if name == "gpt2" else base.layers)
        blocks.append(base.ln_f if name == "gpt2" else base.norm)
        stage = []

        def pre_hook(_m, args, kwargs):
            hs = args[0] if args else kwargs["hidden_states"]
            hs.retain_grad()
            stage.append(hs)
        hooks = [b.register_forward_pre_hook(pre_hook, with_kwargs=True) for b in blocks]
        if name == "gpt2":  # also catch the relevance of the position embeddings
            def hook(_m, _i, o):
                t = o.detach().requires_grad_(True)
                extra["wpe"] = t
                return t
            h = model.transformer.wpe.register_forward_hook(hook)
        logits = model(inputs_embeds=e, use_cache=False).logits
        if name == "gpt2":
            h.remove()
        for hk in hooks:
            hk.remove()
        m, idx = torch.max(logits[0, -1, :], dim=-1)
        m.backward()
        rel_dims = (e * e.grad)[0].detach()
        assert len(stage) == len(blocks)
        out[f"{name}/stage_sums"] = torch.stack([(hs * hs.grad).sum() for hs in stage]).detach()
        out[f"{name}/logits"] = logits.detach().contiguous()
        out[f"{name}/relevance_dims"] = rel_dims.contiguous()
        out[f"{name}/relevance"] = rel_dims.sum(-1).contiguous()
        out[f"{name}/logit"] = m.detach().reshape(1).contiguous()
        out[f"{name}/target_id"] = idx.detach().reshape(1).to(torch.int64)
        if "wpe" in extra:
            w = extra["wpe"]
            report[name]["wpe_relevance_sum"] = float((w * w.grad).sum())
    save_file(out, out_path)
    report["_versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                           "lxt": getattr(lxt, "__version__", None) or _dist_version("lxt"),
                           "python": sys.version.split()[0]}
    with open(out_path + ".json", "w") as f:
        json.dump(report, f)


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


# =========================================================================== parent
def main() -> None:
    import numpy as np
    import safetensors
    import tokenizers
    import transformers
    from safetensors.torch import load_file
    from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                            processors, trainers)
    from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GPT2Config,
                              GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                              MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)
    from transformers.pytorch_utils import Conv1D

    import captum
    from captum.attr import (FeatureAblation, IntegratedGradients, LayerGradientXActivation,
                             LayerIntegratedGradients, LLMAttribution, LLMGradientAttribution,
                             TextTokenInput)

    import captum.attr._core.llm_attr as captum_llm_attr

    # Captum builds display strings of the target tokens (result.output_tokens) by
    # decoding them one by one; its fallback raises IndexError when the last target
    # token is a lone byte of a multi-byte UTF-8 character (which a random model
    # happily generates).  The strings are not used here: replace them by
    # convert_ids_to_tokens (no effect on any attribution).
    captum_llm_attr._convert_ids_to_pretty_tokens = (
        lambda ids, tokenizer: [str(t) for t in tokenizer.convert_ids_to_tokens(ids.tolist())])
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
    if not os.path.exists(LXT_PYTHON):
        sys.exit(f"{LXT_PYTHON} not found: create the LXT venv (see the docstring) "
                 "or set LXT_PYTHON")

    # ------------------------------------------------------------------ tokenizers
    def train(pre_tok, specials_first, normalizer=None) -> Tokenizer:
        tok = Tokenizer(models.BPE())
        if normalizer is not None:
            tok.normalizer = normalizer
        tok.pre_tokenizer = pre_tok
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=384, min_frequency=1, show_progress=False,
            special_tokens=specials_first,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(CORPUS, trainer)
        assert tok.get_vocab_size() == 384, tok.get_vocab_size()
        for i, s in enumerate(specials_first):
            assert tok.token_to_id(s) == i
        return tok

    def split_bytelevel(regex):
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])

    def add_specials(tok, names):
        start = tok.get_vocab_size()
        tok.add_special_tokens(names)
        ids = [tok.token_to_id(s) for s in names]
        assert ids == list(range(start, start + len(names))), ids
        return ids

    def make_gpt2():
        tok = train(pre_tokenizers.ByteLevel(add_prefix_space=False), [])
        add_specials(tok, ["<|endoftext|>"])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        return tok

    def make_llama():
        tok = train(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<unk>", "<s>", "</s>"])
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)])
        return tok

    def make_llama3():
        tok = train(split_bytelevel(LLAMA3_REGEX), [])
        add_specials(tok, ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                           "<|end_header_id|>", "<|eot_id|>"])
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", 384)])])
        return tok

    def make_qwen():
        tok = train(split_bytelevel(QWEN2_REGEX), [], normalizer=normalizers.NFC())
        add_specials(tok, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        return tok

    makers = {"gpt2": make_gpt2, "llama": make_llama, "llama3": make_llama3, "qwen": make_qwen}
    toks = {}
    for k, fn in makers.items():
        a, b = fn(), fn()
        assert a.to_str() == b.to_str(), k  # the trainer is deterministic
        toks[k] = a

    # ------------------------------------------------------------------ variants
    COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64,
                  hidden_act="silu", attn_implementation="eager")
    L3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 16}

    specs = {
        "gpt2": dict(
            seed=11, tok="gpt2", cls=GPT2LMHeadModel, bos=384, eos=384, pad=384,
            add_bos=False, baseline=384, legacy_rope=None, chat=None,
            tok_cfg=dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                         unk_token="<|endoftext|>"),
            config=lambda V: GPT2Config(
                vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=None,
                activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=384,
                eos_token_id=384, tie_word_embeddings=True, attn_implementation="eager")),
        "llama": dict(
            seed=12, tok="llama", cls=LlamaForCausalLM, bos=1, eos=2, pad=2, add_bos=True,
            baseline=0, legacy_rope={"rope_theta": 10000.0}, chat=None,
            tok_cfg=dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"),
            config=lambda V: LlamaConfig(
                vocab_size=V, rms_norm_eps=1e-5, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2, **COMMON)),
        "llama3": dict(
            seed=13, tok="llama3", cls=LlamaForCausalLM, bos=384, eos=[385, 388], pad=385,
            add_bos=True, baseline=385,
            legacy_rope={"rope_theta": 10000.0, "rope_scaling": dict(L3_SCALING)},
            chat=(LLAMA3_CHAT_TEMPLATE, CHAT_LLAMA3),
            tok_cfg=dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"),
            config=lambda V: LlamaConfig(
                vocab_size=V, rms_norm_eps=1e-5, tie_word_embeddings=True,
                rope_parameters={"rope_theta": 10000.0, **L3_SCALING},
                attention_bias=False, mlp_bias=False, bos_token_id=384,
                eos_token_id=[385, 388], **COMMON)),
        "mistral": dict(
            seed=14, tok="llama", cls=MistralForCausalLM, bos=1, eos=2, pad=2, add_bos=True,
            baseline=0, legacy_rope=None, chat=None,
            tok_cfg=dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"),
            config=lambda V: MistralConfig(
                vocab_size=V, rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=None,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                bos_token_id=1, eos_token_id=2, **COMMON)),
        "qwen2": dict(
            seed=15, tok="qwen", cls=Qwen2ForCausalLM, bos=384, eos=384, pad=384,
            add_bos=False, baseline=384, legacy_rope={"rope_theta": 1000000.0},
            chat=(CHATML_TEMPLATE, CHAT_QWEN), model_vocab=400,
            tok_cfg=dict(bos_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>"),
            config=lambda V: Qwen2Config(
                vocab_size=V, rms_norm_eps=1e-6, tie_word_embeddings=True,
                use_sliding_window=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                bos_token_id=384, eos_token_id=384, **COMMON)),
        "qwen3": dict(
            seed=16, tok="qwen", cls=Qwen3ForCausalLM, bos=384, eos=384, pad=384,
            add_bos=False, baseline=384, legacy_rope=None,
            chat=(CHATML_TEMPLATE, CHAT_QWEN), model_vocab=400,
            tok_cfg=dict(bos_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>"),
            config=lambda V: Qwen3Config(
                vocab_size=V, head_dim=16, rms_norm_eps=1e-6, tie_word_embeddings=False,
                attention_bias=False, use_sliding_window=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                bos_token_id=384, eos_token_id=384, **COMMON)),
    }

    def f32(t):
        assert t.dtype == torch.float32, t.dtype
        return t.detach().contiguous().clone()

    def randomize(model, seed):
        g = torch.Generator().manual_seed(seed)
        done = set()

        def normal(p, std, mean=0.0):
            if id(p) in done:  # tied lm_head: keep the embedding's draw
                return
            p.copy_(torch.randn(p.shape, generator=g) * std + mean)
            done.add(id(p))

        with torch.no_grad():
            for _n, m in model.named_modules():
                if isinstance(m, nn.Linear):
                    normal(m.weight, m.weight.shape[1] ** -0.5)
                    if m.bias is not None:
                        normal(m.bias, 0.1)
                elif isinstance(m, Conv1D):
                    normal(m.weight, m.weight.shape[0] ** -0.5)
                    normal(m.bias, 0.1)
                elif isinstance(m, nn.LayerNorm):
                    normal(m.weight, 0.1, 1.0)
                    normal(m.bias, 0.1)
                elif type(m).__name__.endswith("RMSNorm"):
                    normal(m.weight, 0.1, 1.0)
                elif isinstance(m, nn.Embedding):
                    normal(m.weight, 0.5)
        for name, p in model.named_parameters():
            assert id(p) in done, name

    def folder_bytes(folder):
        return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))

    versions = {
        "torch": torch.__version__, "captum": captum.__version__,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "generator": "scripts/golden/llm_families.py",
    }

    REPORT, GOLD, INFO, JOB = {}, {}, {}, {}
    for name in VARIANTS:
        sp = specs[name]
        folder = os.path.join(ROOT, name)
        tok = toks[sp["tok"]]
        V = sp.get("model_vocab", tok.get_vocab_size())
        config = sp["config"](V)
        torch.manual_seed(sp["seed"])
        model = sp["cls"](config)
        randomize(model, sp["seed"])
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        assert model.config._attn_implementation == "eager"
        if name == "qwen3":
            a = model.model.layers[0].self_attn
            assert a.q_proj.weight.shape == (64, 32) and a.k_proj.weight.shape == (32, 32)
            assert a.o_proj.weight.shape == (32, 64) and a.q_norm.weight.shape == (16,)
        if name == "qwen2":
            a = model.model.layers[0].self_attn
            assert a.q_proj.bias is not None and a.o_proj.bias is None
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        assert tied == config.tie_word_embeddings, name
        eos_list = sp["eos"] if isinstance(sp["eos"], list) else [sp["eos"]]
        model.generation_config = GenerationConfig(
            bos_token_id=sp["bos"], eos_token_id=sp["eos"], pad_token_id=sp["pad"])

        # --- save ------------------------------------------------------------------
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        model.save_pretrained(folder, safe_serialization=True)
        keep = ["config.json", "generation_config.json", "model.safetensors"]
        extra = []
        for f in sorted(os.listdir(folder)):
            if f not in keep:
                extra.append(f)
                p = os.path.join(folder, f)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        assert sorted(os.listdir(folder)) == keep, os.listdir(folder)
        cfg_path = os.path.join(folder, "config.json")
        cfg_json = json.load(open(cfg_path))
        if sp["legacy_rope"] is not None:
            rp = cfg_json.pop("rope_parameters")
            assert rp["rope_theta"] == sp["legacy_rope"]["rope_theta"], rp
            cfg_json.update(sp["legacy_rope"])
            cfg_json = dict(sorted(cfg_json.items()))
            with open(cfg_path, "w") as f:
                f.write(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n")
        tok.save(os.path.join(folder, "tokenizer.json"))
        tcfg = {"clean_up_tokenization_spaces": False,
                "model_input_names": ["input_ids", "attention_mask"],
                "model_max_length": 64, "tokenizer_class": "PreTrainedTokenizerFast"}
        tcfg.update(sp["tok_cfg"])
        if sp["chat"] is not None:
            tcfg["chat_template"] = sp["chat"][0]
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            f.write(json.dumps(dict(sorted(tcfg.items())), indent=2, ensure_ascii=False) + "\n")
        tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        hf_tok = AutoTokenizer.from_pretrained(folder)

        # --- prompt, logits, reload ----------------------------------------------------
        enc = tok.encode(PROMPT)
        prompt_ids = torch.tensor([enc.ids], dtype=torch.int64)
        T = prompt_ids.shape[1]
        assert (prompt_ids[0, 0].item() == sp["bos"]) == sp["add_bos"], enc.tokens
        assert hf_tok(PROMPT).input_ids == enc.ids, (hf_tok(PROMPT).input_ids, enc.ids)
        assert hf_tok.encode(PROMPT, return_tensors="pt").tolist() == prompt_ids.tolist()
        with torch.no_grad():
            logits = model(input_ids=prompt_ids).logits
            assert torch.equal(logits, model(input_ids=prompt_ids).logits)
            re = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
            assert type(re) is sp["cls"], type(re)
            assert re.config.rope_parameters == model.config.rope_parameters if name != "gpt2" \
                else True
            reload_diff = (re(input_ids=prompt_ids).logits - logits).abs().max().item()
            assert reload_diff <= 1e-6, (name, reload_diff)
            del re
        assert logits.shape == (1, T, V)

        # --- greedy ----------------------------------------------------------------------
        with torch.no_grad():
            gen = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                                 do_sample=False, max_new_tokens=N_NEW)
            seq = prompt_ids.clone()
            greedy_logits = []
            for _ in range(N_NEW):
                lo = model(input_ids=seq).logits[:, -1]
                greedy_logits.append(lo)
                seq = torch.cat([seq, lo.argmax(-1, keepdim=True)], dim=1)
        assert gen.shape == (1, T + N_NEW), gen.shape
        assert torch.equal(gen, seq), (gen, seq)
        new = gen[0, T:]
        assert not any(t in eos_list for t in new.tolist()), new
        greedy_logits = torch.stack(greedy_logits, dim=1)

        # --- padded batch -------------------------------------------------------------
        bencs = [tok.encode(s).ids for s in BATCH_PROMPTS]
        assert bencs[0] == enc.ids and len(bencs[0]) != len(bencs[1])
        L = max(len(e) for e in bencs)
        batch_ids = torch.full((2, L), sp["pad"], dtype=torch.int64)
        batch_mask = torch.zeros(2, L, dtype=torch.int64)
        for b, e in enumerate(bencs):
            batch_ids[b, L - len(e):] = torch.tensor(e)
            batch_mask[b, L - len(e):] = 1
        batch_pos = (batch_mask.cumsum(-1) - 1).masked_fill(batch_mask == 0, 0)
        with torch.no_grad():
            logits_batch = model(input_ids=batch_ids, attention_mask=batch_mask,
                                 position_ids=batch_pos).logits
            for b, e in enumerate(bencs):
                single = model(input_ids=torch.tensor([e])).logits[0]
                d = (logits_batch[b, L - len(e):] - single).abs().max().item()
                assert d < 1e-5, (name, b, d)

        out = {
            "prompt_ids": prompt_ids.clone(),
            "logits": f32(logits),
            "greedy_ids": gen.clone(),
            "greedy_logits": f32(greedy_logits),
            "batch_ids": batch_ids, "batch_mask": batch_mask,
            "batch_position_ids": batch_pos,
            "logits_batch": f32(logits_batch),
        }
        info = {
            "class": sp["cls"].__name__, "seed": sp["seed"], "model_vocab_size": V,
            "tokenizer_vocab_size": tok.get_vocab_size(),
            "bos_token_id": sp["bos"], "eos_token_id": sp["eos"], "pad_token_id": sp["pad"],
            "bos_added_by_tokenizer": sp["add_bos"],
            "prompt": PROMPT, "prompt_tokens": enc.tokens,
            "batch_prompts": BATCH_PROMPTS,
            "batch_tokens": [tok.encode(s).tokens for s in BATCH_PROMPTS],
            "greedy_new_ids": new.tolist(),
            "greedy_new_tokens": [tok.id_to_token(i) for i in new.tolist()],
            "greedy_text": tok.decode(gen[0].tolist(), skip_special_tokens=False),
            "config_rope_spelling": ("none" if name == "gpt2" else
                                     "legacy rope_theta/rope_scaling"
                                     if sp["legacy_rope"] is not None else "rope_parameters"),
        }

        # --- chat template --------------------------------------------------------------
        if sp["chat"] is not None:
            msgs = sp["chat"][1]
            text = hf_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            chat_ids = tok.encode(text, add_special_tokens=False).ids
            via_hf = hf_tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
            if not isinstance(via_hf, list):
                via_hf = via_hf["input_ids"]
            assert list(via_hf) == chat_ids, (via_hf, chat_ids)
            out["chat_ids"] = torch.tensor([chat_ids], dtype=torch.int64)
            info["chat_messages"] = msgs
            info["chat_text"] = text
            info["chat_tokens"] = tok.encode(text, add_special_tokens=False).tokens

        # --- Captum ---------------------------------------------------------------------
        emb = model.get_input_embeddings()
        skip = [sp["bos"]] if sp["add_bos"] else None
        target = new.clone()
        K = target.shape[0]
        feat_pos = list(range(1, T)) if sp["add_bos"] else list(range(T))
        F = len(feat_pos)
        used = set(prompt_ids[0].tolist()) | set(target.tolist())
        sentinel = max(i for i in range(V) if i not in used)

        def s_k(embeds_full, k):
            """log p(y_k | ...) from inputs_embeds (B, T+k, H)."""
            lo = model(inputs_embeds=embeds_full).logits[:, -1]
            return torch.log_softmax(lo, dim=-1)[:, target[k]]

        def full_ids(k):
            return torch.cat([prompt_ids, target[:k].unsqueeze(0)], dim=1)

        with torch.no_grad():
            tgt_lp = torch.stack([s_k(emb(full_ids(k)), k)[0] for k in range(K)])

        # IG, zero-embedding baseline via the sentinel hook
        def zero_sentinel(_m, inp, o):
            return o * (inp[0] != sentinel).unsqueeze(-1).to(o.dtype)

        inp_zero = TextTokenInput(PROMPT, hf_tok, baselines=sentinel, skip_tokens=skip)
        assert torch.equal(inp_zero.inp_tensor, prompt_ids)
        assert inp_zero.itp_tensor[0].tolist() == prompt_ids[0, feat_pos].tolist()
        h = emb.register_forward_hook(zero_sentinel)
        try:
            with torch.enable_grad():
                r = LLMGradientAttribution(LayerIntegratedGradients(model, emb), hf_tok).attribute(
                    inp_zero, target=target, n_steps=IG_STEPS)
        finally:
            h.remove()
        ig_tok, ig_seq = r.token_attr.detach().float(), r.seq_attr.detach().float()
        assert ig_tok.shape == (K, F) and ig_seq.shape == (F,), (ig_tok.shape, ig_seq.shape)

        # direct IG (own Gauss-Legendre) and Captum's IntegratedGradients on embeddings
        u, w = np.polynomial.legendre.leggauss(IG_STEPS)
        alphas = torch.tensor(0.5 * (u + 1), dtype=torch.float32)
        weights = torch.tensor(0.5 * w, dtype=torch.float32)
        ig_direct = torch.zeros(K, F)
        ig_captum_plain = torch.zeros(K, F)
        base_lp = torch.zeros(K)
        for k in range(K):
            with torch.no_grad():
                x = emb(full_ids(k))
                b = x.clone()
                b[0, feat_pos] = 0
                base_lp[k] = s_k(b, k)[0]
            path = (b + alphas.view(-1, 1, 1) * (x - b)).requires_grad_(True)
            with torch.enable_grad():
                g, = torch.autograd.grad(s_k(path, k).sum(), path)
            a = ((x - b)[0] * (weights.view(-1, 1, 1) * g).sum(0)).sum(-1)
            ig_direct[k] = a[feat_pos]
            a2 = IntegratedGradients(lambda e, k=k: s_k(e, k)).attribute(
                x, baselines=b, n_steps=IG_STEPS, method="gausslegendre")
            ig_captum_plain[k] = a2[0].sum(-1)[feat_pos].detach()
        d1 = (ig_tok - ig_direct).abs().max().item()
        d2 = (ig_tok - ig_captum_plain).abs().max().item()
        assert d1 < 2e-5 and d2 < 2e-5, (name, d1, d2)
        assert torch.allclose(ig_seq, ig_tok.sum(0), atol=1e-5)
        ig_delta = ig_tok.sum(1) - (tgt_lp - base_lp)

        # IG with Captum's token baseline
        inp = TextTokenInput(PROMPT, hf_tok, baselines=sp["baseline"], skip_tokens=skip)
        with torch.enable_grad():
            r = LLMGradientAttribution(LayerIntegratedGradients(model, emb), hf_tok).attribute(
                inp, target=target, n_steps=IG_STEPS)
        igt_tok, igt_seq = r.token_attr.detach().float(), r.seq_attr.detach().float()
        igt_direct = torch.zeros(K, F)
        tok_base_lp = torch.zeros(K)
        for k in range(K):
            with torch.no_grad():
                x = emb(full_ids(k))
                bid = full_ids(k).clone()
                bid[0, feat_pos] = sp["baseline"]
                b = emb(bid)
                tok_base_lp[k] = s_k(b, k)[0]
            path = (b + alphas.view(-1, 1, 1) * (x - b)).requires_grad_(True)
            with torch.enable_grad():
                g, = torch.autograd.grad(s_k(path, k).sum(), path)
            igt_direct[k] = ((x - b)[0] * (weights.view(-1, 1, 1) * g).sum(0)).sum(-1)[feat_pos]
        d3 = (igt_tok - igt_direct).abs().max().item()
        assert d3 < 2e-5, (name, d3)
        assert torch.allclose(igt_seq, igt_tok.sum(0), atol=1e-5)
        igt_delta = igt_tok.sum(1) - (tgt_lp - tok_base_lp)

        # gradient x input
        with torch.enable_grad():
            r = LLMGradientAttribution(LayerGradientXActivation(model, emb), hf_tok).attribute(
                inp, target=target)
        gxi_tok, gxi_seq = r.token_attr.detach().float(), r.seq_attr.detach().float()
        gxi_direct = torch.zeros(K, F)
        for k in range(K):
            x = emb(full_ids(k)).detach().requires_grad_(True)
            with torch.enable_grad():
                g, = torch.autograd.grad(s_k(x, k).sum(), x)
            gxi_direct[k] = (x * g)[0].sum(-1)[feat_pos].detach()
        d4 = (gxi_tok - gxi_direct).abs().max().item()
        assert d4 < 1e-5, (name, d4)
        assert torch.allclose(gxi_seq, gxi_tok.sum(0), atol=1e-5)

        # feature ablation
        # use_cached_outputs=False: Captum 0.9's default cached path is broken with
        # transformers 5 (see the docstring)
        r = LLMAttribution(FeatureAblation(model), hf_tok).attribute(
            inp, target=target, use_cached_outputs=False)
        fa_tok, fa_seq = r.token_attr.detach().float(), r.seq_attr.detach().float()
        assert fa_tok.shape == (K, F) and fa_seq.shape == (F,)
        fa_direct = torch.zeros(K, F)
        with torch.no_grad():
            def teacher_forced(ids):
                lo = model(input_ids=torch.cat([ids, target.unsqueeze(0)], dim=1)).logits
                lp = torch.log_softmax(lo[0, T - 1:T - 1 + K], dim=-1)
                return lp[torch.arange(K), target]
            lp0 = teacher_forced(prompt_ids)
            assert (lp0 - tgt_lp).abs().max() < 1e-5
            for j, t in enumerate(feat_pos):
                ids = prompt_ids.clone()
                ids[0, t] = sp["baseline"]
                fa_direct[:, j] = lp0 - teacher_forced(ids)
        d5 = (fa_tok - fa_direct).abs().max().item()
        assert d5 < 2e-5, (name, d5)
        assert torch.allclose(fa_seq, fa_tok.sum(0), atol=2e-5)

        out.update({
            "captum_target_ids": target.clone(),
            "captum_feature_ids": prompt_ids[0, feat_pos].clone(),
            "captum_baseline_id": torch.tensor([sp["baseline"]], dtype=torch.int64),
            "captum_target_logprobs": f32(tgt_lp),
            "captum_ig_token_attr": f32(ig_tok), "captum_ig_seq_attr": f32(ig_seq),
            "captum_ig_baseline_logprobs": f32(base_lp),
            "captum_ig_delta": f32(ig_delta),
            "captum_ig_tokbase_token_attr": f32(igt_tok),
            "captum_ig_tokbase_seq_attr": f32(igt_seq),
            "captum_ig_tokbase_baseline_logprobs": f32(tok_base_lp),
            "captum_ig_tokbase_delta": f32(igt_delta),
            "captum_gxi_token_attr": f32(gxi_tok), "captum_gxi_seq_attr": f32(gxi_seq),
            "captum_ablation_token_attr": f32(fa_tok), "captum_ablation_seq_attr": f32(fa_seq),
        })
        info.update({
            "captum_feature_tokens": [tok.id_to_token(i) for i in prompt_ids[0, feat_pos].tolist()],
            "captum_baseline_token": tok.id_to_token(sp["baseline"]),
            "captum_skip_tokens": skip,
            "captum_ig_zero_sentinel_id": sentinel,
        })
        REPORT[name] = {
            "extra_files_deleted": extra, "T": T, "F": F, "L": L, "V": V,
            "reload_max_abs_diff": reload_diff,
            "captum_check_max_abs_diff": {"ig_vs_direct": d1, "ig_vs_IntegratedGradients": d2,
                                          "ig_tokbase_vs_direct": d3, "gxi": d4, "ablation": d5},
            "captum_ig_delta": ig_delta.tolist(),
            "captum_ig_tokbase_delta": igt_delta.tolist(),
            "target_logprobs": tgt_lp.tolist(),
        }
        GOLD[name], INFO[name] = out, info
        JOB[name] = {"folder": os.path.abspath(folder), "prompt_ids": prompt_ids.tolist()}

    # ------------------------------------------------------------------ LXT (child venv)
    lxt_versions = None
    with tempfile.TemporaryDirectory() as td:
        job_path = os.path.join(td, "job.json")
        json.dump(JOB, open(job_path, "w"))
        results = {}
        for rules in ["attnlrp", "cplrp"]:
            out_path = os.path.join(td, f"{rules}.safetensors")
            subprocess.run([LXT_PYTHON, os.path.abspath(__file__), "--lxt-child", job_path,
                            out_path, rules], check=True)
            results[rules] = (load_file(out_path), json.load(open(out_path + ".json")))
        for name in VARIANTS:
            out, info = GOLD[name], INFO[name]
            lx = {}
            for rules, (res, rep) in results.items():
                lxt_versions = rep["_versions"]
                d_unp = (res[f"{name}/unpatched_logits"] - out["logits"]).abs().max().item()
                d_pat = (res[f"{name}/logits"] - out["logits"]).abs().max().item()
                assert d_unp < 1e-5 and d_pat < 1e-5, (name, rules, d_unp, d_pat)
                tid = res[f"{name}/target_id"]
                assert tid.item() == out["logits"][0, -1].argmax().item()
                logit = res[f"{name}/logit"]
                assert abs(logit.item() - out["logits"][0, -1].max().item()) < 1e-5
                rel = res[f"{name}/relevance"]
                out[f"lxt_{rules}_relevance"] = f32(rel)
                out[f"lxt_{rules}_relevance_dims"] = f32(res[f"{name}/relevance_dims"])
                out[f"lxt_{rules}_layer_input_relevance"] = f32(res[f"{name}/stage_sums"])
                if rules == "attnlrp":
                    out["lxt_logit"] = f32(logit)
                    out["lxt_target_id"] = tid.clone()
                else:
                    assert torch.equal(out["lxt_logit"], logit), name
                total = rel.sum().item()
                lx[rules] = {"relevance_sum": total, "logit": logit.item(),
                             "layer_input_relevance_sums": res[f"{name}/stage_sums"].tolist(),
                             "sum_minus_logit": total - logit.item(),
                             "relative_gap": (total - logit.item()) / abs(logit.item()),
                             "max_abs_diff_torch4_vs_golden_logits": d_unp}
                if "wpe_relevance_sum" in rep[name]:
                    lx[rules]["gpt2_wpe_relevance_sum"] = rep[name]["wpe_relevance_sum"]
                if rules == "attnlrp":
                    lx["plain_gradient_x_input_sum"] = sum(rep[name]["plain_gxi_relevance"])
            info["lxt"] = lx
            info["lxt_target_token"] = toks[specs[name]["tok"]].id_to_token(
                out["lxt_target_id"].item())
            REPORT[name]["lxt"] = lx

    # ------------------------------------------------------------------ write goldens
    total = 0
    for name in VARIANTS:
        folder = os.path.join(ROOT, name)
        out, info = GOLD[name], INFO[name]
        for k, v in out.items():
            if v.dtype.is_floating_point:
                assert torch.isfinite(v).all(), (name, k)
        meta = dict(versions)
        meta.update({"variant": name, "class": info["class"], "seed": str(info["seed"]),
                     "prompt": PROMPT, "batch_prompts": " || ".join(BATCH_PROMPTS),
                     "lxt_torch": lxt_versions["torch"],
                     "lxt_transformers": lxt_versions["transformers"],
                     "lxt": str(lxt_versions["lxt"])})
        save_golden(out, os.path.join(folder, "golden.safetensors"), meta)
        info["golden_tensors"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)]
                                  for k, v in sorted(out.items())}
        info["versions"] = dict(versions, lxt_child=lxt_versions)
        with open(os.path.join(folder, "golden.json"), "w") as f:
            f.write(json.dumps(info, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
        REPORT[name]["golden_keys"] = info["golden_tensors"]
        size = folder_bytes(folder)
        total += size
        print(f"{name}/  {size} bytes")
        for f in sorted(os.listdir(folder)):
            p = os.path.join(folder, f)
            hsh = hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
            print(f"    {f:28s} {os.path.getsize(p):8d}  sha256 {hsh}")
    print(f"total {total} bytes")
    assert total <= MAX_TOTAL_BYTES, total
    print(json.dumps(REPORT, indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--lxt-child":
        lxt_child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
