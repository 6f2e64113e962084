//! Shapley values and span ablation of a forced continuation on the tiny decoder
//! checkpoints: exact Shapley values against Captum 0.9's `LLMAttribution(ShapleyValues)`
//! over spans and a direct torch enumeration over tokens (`scripts/golden/llm_shapley.py`); span values against the core's `ShapleyValues` /
//! `FeatureAblation` with a feature mask (an independent implementation); permutation
//! sampling's completeness (each order telescopes) and convergence to the exact values.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::Batching;
use candle_explain_models::decoder::attribution::{
    attribute_continuation, ContinuationAttribution, ContinuationScores, Features, LlmMethod, Score, ShapleySampling, Sources,
    TokenBaseline,
};
use candle_explain_models::decoder::DecoderTokenizer;
use candle_explain_models::CausalLm;
use std::ops::Range;
use std::path::PathBuf;

const VARIANTS: [&str; 6] = ["gpt2", "llama", "llama3", "mistral", "qwen2", "qwen3"];

fn folder(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf")).join(name)
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_dtype(DType::U32).unwrap().to_vec1().unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

struct Case {
    model: CausalLm,
    prompt: Vec<u32>,
    targets: Vec<u32>,
    skip: Vec<usize>,
    baseline: u32,
}

impl Case {
    fn new(name: &str) -> Self {
        let model = CausalLm::from_dir(folder(name), DType::F32, &Device::Cpu).unwrap();
        let g = candle_core::safetensors::load(folder(name).join("golden.safetensors"), &Device::Cpu).unwrap();
        let (prompt, targets) = (ids(&g["prompt_ids"]), ids(&g["captum_target_ids"]));
        // Captum skips the Llama family's BOS: one feature fewer than prompt tokens.
        let skip = if ids(&g["captum_feature_ids"]).len() < prompt.len() { vec![0] } else { vec![] };
        let baseline = ids(&g["captum_baseline_id"])[0];
        Case { model, prompt, targets, skip, baseline }
    }

    fn run(&self, features: Features, sampling: Option<ShapleySampling>, batching: &Batching) -> ContinuationAttribution {
        let baseline = TokenBaseline::Token(self.baseline);
        let method = match sampling {
            Some(sampling) => LlmMethod::Shapley { baseline, features, sampling },
            None => LlmMethod::Ablation { baseline, features },
        };
        attribute_continuation(&self.model, &self.prompt, &self.targets, &method, Score::LogProb, Sources::Prompt, &self.skip, batching).unwrap()
    }

    /// `(T, F)`: the attributed prompt columns.
    fn features(&self, a: &ContinuationAttribution) -> Tensor {
        let p = a.prompt_columns().unwrap();
        p.narrow(1, self.skip.len(), p.dim(1).unwrap() - self.skip.len()).unwrap()
    }
}

/// Exact token Shapley values against the direct torch enumeration of all 2^F coalitions
/// (Captum's `ShapleyValues` walks all F! orders: 12! is out of reach), whose coalition
/// values the script ties to Captum's `FeatureAblation`; and span Shapley values (the tokens
/// in Captum's six contiguous groups) against Captum's own `ShapleyValues` with that feature
/// mask (720 orders; Captum sums them in f32, hence 3e-5).
#[test]
fn exact_shapley_values_equal_the_references() {
    for name in VARIANTS {
        let c = Case::new(name);
        let g = candle_core::safetensors::load(folder(name).join("shapley.safetensors"), &Device::Cpu).unwrap();
        let check = |got: &Tensor, key: &str, tol: f32| {
            let want = &g[key];
            let e = max_abs(&(got - want).unwrap()) / max_abs(want).max(1.0);
            assert!(e < tol, "{name}: differs from {key} by {e}");
        };
        // Three coalitions per chunk: chunking does not change the result.
        for batching in [Batching::default(), Batching::with_max_rows(3)] {
            let a = c.run(Features::Tokens, Some(ShapleySampling::Exact), &batching);
            check(&c.features(&a), "direct_shapley_token_attr", 1e-5);
        }
        let groups = ids(&g["captum_shapley_group_mask"]);
        let first = c.skip.len();
        let mut spans: Vec<Range<usize>> = Vec::new();
        for (f, &grp) in groups.iter().enumerate() {
            match spans.last_mut() {
                Some(s) if groups[s.start - first] == grp => s.end = f + first + 1,
                _ => spans.push(f + first..f + first + 1),
            }
        }
        assert_eq!(spans.len(), 6, "{name}: contiguous groups");
        let a = c.run(Features::Spans(spans), Some(ShapleySampling::Exact), &Batching::default());
        check(&c.features(&a), "captum_shapley_grouped_token_attr", 3e-5);
    }
}

/// Sampled orders telescope: per target, the values sum to `S(x) − S(all replaced)` for
/// any number of orders, which the exact values also sum to; with 400 orders they approach
/// the exact values; the seed fixes them.
#[test]
fn sampled_shapley_values_are_complete_and_approach_the_exact_ones() {
    let c = Case::new("llama");
    let exact = c.run(Features::Tokens, Some(ShapleySampling::Exact), &Batching::default());
    let sample = |count, seed| c.run(Features::Tokens, Some(ShapleySampling::Permutations { count, seed }), &Batching::with_max_rows(7));
    let few = sample(3, 1);
    let sums = |a: &ContinuationAttribution| c.features(a).sum(1).unwrap().to_vec1::<f32>().unwrap();
    for (s, e) in sums(&few).iter().zip(sums(&exact)) {
        assert!((s - e).abs() < 1e-5 * e.abs().max(1.0), "3 orders sum to {s}, exact values to {e}");
    }
    assert_eq!(few.scores, exact.scores);
    let again = sample(3, 1);
    assert_eq!(max_abs(&(&few.matrix - &again.matrix).unwrap()), 0.0, "the seed fixes the orders");
    assert!(max_abs(&(&few.matrix - &sample(3, 2).matrix).unwrap()) > 0.0, "another seed, other orders");
    let many = sample(400, 7);
    let (m, x) = (c.features(&many), c.features(&exact));
    let e = max_abs(&(&m - &x).unwrap()) / max_abs(&x);
    assert!(e < 0.1, "400 orders are {e} (relative) from the exact values");
}

/// Spans (the tokens paired up, the last one alone) as one feature each: exact Shapley values
/// and ablation equal the core's `ShapleyValues` / `FeatureAblation` over the embeddings with
/// the spans as a feature mask (the skipped BOS a group of its own, a dummy: its baseline is
/// its own embedding); `span_columns` returns one value per span.
#[test]
fn span_values_equal_the_core_methods_with_a_feature_mask() {
    for name in ["gpt2", "llama"] {
        let c = Case::new(name);
        let first = c.skip.len();
        let p = c.prompt.len();
        let spans: Vec<Range<usize>> = (first..p).step_by(2).map(|s| s..(s + 2).min(p)).collect();
        let shapley = c.run(Features::Spans(spans.clone()), Some(ShapleySampling::Exact), &Batching::default());
        let ablation = c.run(Features::Spans(spans.clone()), None, &Batching::with_max_rows(2));
        // The reference: the same explained scores on the embeddings of prompt ++ targets[..T-1].
        let seq: Vec<u32> = c.prompt.iter().chain(&c.targets[..c.targets.len() - 1]).copied().collect();
        let l = seq.len();
        let x = c.model.embed(&Tensor::new(seq.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap();
        let h = x.dim(2).unwrap();
        let model = ContinuationScores::new(&c.model, &c.targets, p, Score::LogProb, DType::F32).unwrap();
        let base_row = c.model.embed(&Tensor::new(&[c.baseline], &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap();
        let mut rows = Vec::new();
        let mut mask = vec![0f32; l];
        for i in 0..l {
            let attributed = i >= first && i < p;
            rows.push(if attributed { base_row.clone() } else { x.narrow(1, i, 1).unwrap() });
            // Group per span; the others (skipped BOS, earlier targets) one group each.
            mask[i] = match spans.iter().position(|s| s.contains(&i)) {
                Some(g) => g as f32,
                None => (spans.len() + i) as f32,
            };
        }
        let baseline = Tensor::cat(&rows, 1).unwrap();
        let mask = Tensor::from_vec(mask, (1, l, 1), &Device::Cpu).unwrap().broadcast_as((1, l, h)).unwrap().contiguous().unwrap();
        let targets = Target::Classes((0..c.targets.len()).collect());
        let reference = |m: &dyn Attributor| -> Tensor {
            // (1, T, L, H): every feature of a group holds its value; one per position.
            m.attribute(&model, &x, &targets).unwrap().attributions.squeeze(0).unwrap().narrow(2, 0, 1).unwrap().squeeze(2).unwrap()
        };
        let mut sv = ShapleyValues::exact(mask.clone());
        sv.baseline = Baseline::Tensor(baseline.clone());
        let mut fa = FeatureAblation::new(mask.clone());
        fa.baseline = Baseline::Tensor(baseline.clone());
        for (ours, want, what) in [(&shapley, reference(&sv), "Shapley"), (&ablation, reference(&fa), "ablation")] {
            let want = want.narrow(1, 0, p).unwrap();
            let got = ours.prompt_columns().unwrap();
            let e = max_abs(&(&got - &want).unwrap()) / max_abs(&want).max(1e-3);
            assert!(e < 1e-5, "{name}: span {what} differs from the core's by {e}");
            let cols = ours.span_columns(&spans).unwrap();
            assert_eq!(cols.dims(), &[c.targets.len(), spans.len()]);
            for (g, s) in spans.iter().enumerate() {
                let a = cols.narrow(1, g, 1).unwrap();
                let b = ours.matrix.narrow(1, s.start, 1).unwrap();
                assert_eq!(max_abs(&(&a - &b).unwrap()), 0.0);
            }
            // A union of two spans sums their values once each; a span that cuts one is refused.
            let union = ours.span_columns(&[spans[0].start..spans[1].end]).unwrap();
            let both = cols.narrow(1, 0, 2).unwrap().sum_keepdim(1).unwrap();
            assert!(max_abs(&(&union - &both).unwrap()) < 1e-6);
            assert!(ours.span_columns(&[spans[0].start..spans[0].start + 1]).is_err());
        }
    }
}

#[test]
fn bad_spans_are_errors() {
    let c = Case::new("llama");
    let p = c.prompt.len();
    let run = |spans: Vec<Range<usize>>| {
        let m = LlmMethod::Ablation { baseline: TokenBaseline::Zero, features: Features::Spans(spans) };
        attribute_continuation(&c.model, &c.prompt, &c.targets, &m, Score::LogProb, Sources::Prompt, &c.skip, &Batching::default())
    };
    for (spans, why) in [
        (vec![], "no spans"),
        (vec![1..1], "empty"),
        (vec![1..3, 2..4], "overlap"),
        (vec![0..2], "the skipped BOS"),
        (vec![1..p + 1], "a target with sources = prompt"),
        (vec![1..1000], "beyond the sequence"),
    ] {
        let e = run(spans.clone()).err().unwrap_or_else(|| panic!("{why}: {spans:?} accepted"));
        assert!(!e.to_string().is_empty());
    }
    let exact_too_big = LlmMethod::Shapley {
        baseline: TokenBaseline::Zero,
        features: Features::Tokens,
        sampling: ShapleySampling::Exact,
    };
    let long: Vec<u32> = (0..20).map(|i| 5 + i).collect();
    let e = attribute_continuation(&c.model, &long, &c.targets, &exact_too_big, Score::LogProb, Sources::Prompt, &[], &Batching::default()).unwrap_err();
    assert!(e.to_string().contains("at most 16"), "{e}");
}

/// Words from the GPT-2 byte-level tokenizer: a leading space starts one, punctuation is one
/// of its own, a token that continues a word joins it; skipped positions belong to none.
#[test]
fn word_spans_follow_spaces_and_punctuation() {
    let dir = folder("gpt2");
    let lm = CausalLm::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    let tok = DecoderTokenizer::from_dir(&dir, &lm).unwrap();
    let text = "The unbelievable truth, isn't it";
    let ids = tok.encode(text, false).unwrap();
    let pieces = tok.pieces(&ids).unwrap();
    let all = vec![true; ids.len()];
    let spans = tok.word_spans(&ids, &all).unwrap();
    let words: Vec<String> = spans.iter().map(|s| pieces[s.clone()].concat()).collect();
    assert_eq!(words, ["The", " unbelievable", " truth", ",", " isn't", " it"], "pieces {pieces:?}");
    // Every position in exactly one span, in order.
    assert_eq!(spans.first().unwrap().start, 0);
    assert!(spans.windows(2).all(|w| w[0].end == w[1].start));
    let mut some = all.clone();
    some[0] = false;
    assert_eq!(tok.word_spans(&ids, &some).unwrap()[0].start, 1);
    assert!(tok.word_spans(&ids, &all[1..]).is_err());
}
