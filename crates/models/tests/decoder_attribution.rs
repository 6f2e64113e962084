//! Attribution of a forced continuation on the tiny decoder checkpoints, against Captum 0.9's
//! `LLMGradientAttribution` (Gradient × Input, Layer IG with 32 Gauss–Legendre nodes from a
//! zero or a token baseline) and `LLMAttribution(FeatureAblation)`
//! (`scripts/golden/llm_families.py`): target k is `log p(y_k | prompt, y_<k)`, sources are the
//! prompt's tokens (the BOS of the Llama family is skipped, as Captum's `skip_tokens`), the
//! earlier targets stay as they are.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::Batching;
use candle_explain_models::decoder::attribution::{
    attribute_continuation, ContinuationAttribution, LlmMethod, Score, Sources, TokenBaseline,
};
use candle_explain_models::CausalLm;
use std::collections::HashMap;
use std::path::PathBuf;

const VARIANTS: [&str; 6] = ["gpt2", "llama", "llama3", "mistral", "qwen2", "qwen3"];

fn folder(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf")).join(name)
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_dtype(DType::U32).unwrap().to_vec1().unwrap()
}

/// max |a − b| / max(1e-3, max |b|).
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let m = |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    m(&(a - b).unwrap()) / m(b).max(1e-3)
}

struct Case {
    name: &'static str,
    model: CausalLm,
    g: HashMap<String, Tensor>,
    prompt: Vec<u32>,
    targets: Vec<u32>,
    skip: Vec<usize>,
}

impl Case {
    fn new(name: &'static str) -> Self {
        let model = CausalLm::from_dir(folder(name), DType::F32, &Device::Cpu).unwrap();
        let g = candle_core::safetensors::load(folder(name).join("golden.safetensors"), &Device::Cpu).unwrap();
        let prompt = ids(&g["prompt_ids"]);
        let targets = ids(&g["captum_target_ids"]);
        let features = ids(&g["captum_feature_ids"]);
        // Captum skips the BOS of the Llama family: the prompt has one id more than the
        // features there.
        let skip = if features.len() < prompt.len() { vec![0] } else { vec![] };
        Case { name, model, g, prompt, targets, skip }
    }

    fn run(&self, method: LlmMethod) -> ContinuationAttribution {
        attribute_continuation(&self.model, &self.prompt, &self.targets, &method, Score::LogProb, Sources::Prompt, &self.skip, &Batching::default())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// `(K, F)`: the prompt's feature columns.
    fn features(&self, a: &ContinuationAttribution) -> Tensor {
        let p = a.prompt_columns().unwrap();
        p.narrow(1, self.skip.len(), p.dim(1).unwrap() - self.skip.len()).unwrap()
    }

    fn check(&self, what: &str, got: &Tensor, want: &str, tol: f32) {
        let e = rel(got, &self.g[want]);
        assert!(e < tol, "{}: {what} differs from the reference {want} by {e}", self.name);
    }
}

#[test]
fn gradient_x_input_and_scores_equal_captum() {
    for name in VARIANTS {
        let c = Case::new(name);
        let a = c.run(LlmMethod::GradientXInput);
        c.check("log-probabilities", &Tensor::new(a.scores.as_slice(), &Device::Cpu).unwrap(), "captum_target_logprobs", 1e-5);
        c.check("gradient × input", &c.features(&a), "captum_gxi_token_attr", 1e-5);
        // Causality: no target depends on the tokens at or after its own position.
        let m: Vec<Vec<f32>> = a.matrix.to_vec2().unwrap();
        let p = c.prompt.len();
        for (k, row) in m.iter().enumerate() {
            assert!(row[p + k..].iter().all(|v| *v == 0.0), "{name}: target {k} sees the future");
        }
    }
}

#[test]
fn integrated_gradients_equal_captum_with_its_deltas() {
    for name in VARIANTS {
        let c = Case::new(name);
        let zero = c.run(LlmMethod::IntegratedGradients { steps: 32, baseline: TokenBaseline::Zero });
        c.check("IG (zero embeddings)", &c.features(&zero), "captum_ig_token_attr", 1e-4);
        let base = Tensor::new(zero.baseline_scores.clone().unwrap().as_slice(), &Device::Cpu).unwrap();
        c.check("IG baseline scores", &base, "captum_ig_baseline_logprobs", 1e-5);
        let token = ids(&c.g["captum_baseline_id"])[0];
        let tok = c.run(LlmMethod::IntegratedGradients { steps: 32, baseline: TokenBaseline::Token(token) });
        c.check("IG (token baseline)", &c.features(&tok), "captum_ig_tokbase_token_attr", 1e-4);
        // Completeness: Σ attributions = S(x) − S(baseline), up to the quadrature's error,
        // which is Captum's own (its delta) for the same 32 nodes.
        for (a, delta) in [(&zero, "captum_ig_delta"), (&tok, "captum_ig_tokbase_delta")] {
            let sums: Vec<f32> = a.matrix.sum(1).unwrap().to_vec1().unwrap();
            let base = a.baseline_scores.as_ref().unwrap();
            let ours: Vec<f32> = (0..sums.len()).map(|k| sums[k] - (a.scores[k] - base[k])).collect();
            let want: Vec<f32> = c.g[delta].to_vec1().unwrap();
            for (o, w) in ours.iter().zip(&want) {
                assert!((o - w).abs() < 1e-3 * (1.0 + w.abs()), "{name}: {delta} {o} vs {w}");
            }
        }
    }
}

#[test]
fn token_ablation_equals_captum() {
    for name in VARIANTS {
        let c = Case::new(name);
        let token = ids(&c.g["captum_baseline_id"])[0];
        // Two tokens per chunk: chunking does not change the result.
        for batching in [Batching::default(), Batching::with_max_rows(2)] {
            let a = attribute_continuation(&c.model, &c.prompt, &c.targets, &LlmMethod::Ablation { baseline: TokenBaseline::Token(token), features: Default::default() }, Score::LogProb, Sources::Prompt, &c.skip, &batching).unwrap();
            c.check("token ablation", &c.features(&a), "captum_ablation_token_attr", 1e-5);
        }
    }
}

#[test]
fn bad_requests_are_errors() {
    let c = Case::new("llama");
    let m = LlmMethod::GradientXInput;
    let run = |prompt: &[u32], targets: &[u32], score: Score| {
        attribute_continuation(&c.model, prompt, targets, &m, score, Sources::All, &[], &Batching::default())
    };
    assert!(run(&[], &c.targets, Score::LogProb).is_err());
    assert!(run(&c.prompt, &[], Score::LogProb).is_err());
    assert!(run(&c.prompt, &[9999], Score::LogProb).is_err());
    assert!(run(&c.prompt, &c.targets, Score::Contrast(vec![1])).is_err());
    // A contrast with itself is 0 everywhere.
    let same = run(&c.prompt, &c.targets, Score::Contrast(c.targets.clone())).unwrap();
    assert!(same.scores.iter().all(|s| *s == 0.0));
}

/// AttnLRP and CP-LRP relevances of the embeddings for the last position's top logit,
/// against LXT 2.1 (`lxt.efficient.monkey_patch` with its `attnLRP` / `cp_LRP` maps; for
/// Mistral, a map of the same LXT functions): relevance = `(e · ∂logit/∂e).sum(-1)` under
/// the patched backward.
#[test]
fn attn_lrp_and_cp_lrp_equal_lxt() {
    use candle_explain_core::prelude::*;
    for name in VARIANTS {
        let c = Case::new(name);
        let target = ids(&c.g["lxt_target_id"])[0] as usize;
        let x = c.model.embed(&c.g["prompt_ids"]).unwrap();
        let logit = c.g["lxt_logit"].to_vec1::<f32>().unwrap()[0];
        for (method, key) in [
            (Box::new(AttnLrp::default()) as Box<dyn Attributor>, "lxt_attnlrp"),
            (Box::new(EpsilonLrp::new(1e-10)), "lxt_cplrp"),
        ] {
            let a = method.attribute(&c.model, &x, &Target::Class(target)).unwrap();
            let out = a.output.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
            assert!((out - logit).abs() < 1e-4 * logit.abs().max(1.0), "{name}: logit {out} vs {logit}");
            let per_dim = a.attributions.squeeze(0).unwrap();
            c.check(key, &per_dim.sum(1).unwrap(), &format!("{key}_relevance"), 1e-4);
            c.check(key, &per_dim, &format!("{key}_relevance_dims"), 1e-4);
        }
        // CP-LRP conserves the logit on the bias-free models (LXT: 7e-8 to 9e-8).
        if ["llama", "llama3", "mistral", "qwen3"].contains(&name) {
            let a = EpsilonLrp::new(1e-10).attribute(&c.model, &x, &Target::Class(target)).unwrap();
            let total = a.attributions.sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!((total - logit).abs() < 1e-5 * logit.abs().max(1.0), "{name}: CP-LRP sums to {total}, logit {logit}");
        }
    }
}
