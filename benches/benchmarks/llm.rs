//! Attributing a language model's continuation: the built-in `weights/tiny-llama` (4M
//! parameters), a 96-token prompt and its 16-token greedy continuation, each method
//! explaining all 16 targets by the prompt (Captum's sources). Throughput is in attributed
//! tokens per second. The Python twin is `benches/llm_attribution.py` (same folder, same
//! sizes: `--model weights/tiny-llama --prompt-len 96 --targets 16`); the GPT-2-small
//! comparison is `benches/llm_compare.sh` (minutes per run, outside criterion).

use candle_core::{DType, Device};
use candle_explain::core::Batching;
use candle_explain::models::decoder::attribution::{
    attribute_continuation, LlmMethod, Score, Sources, TokenBaseline,
};
use candle_explain::models::decoder::{DecoderTokenizer, GenerateConfig};
use candle_explain::models::CausalLm;
use criterion::{criterion_group, Criterion, Throughput};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TEXT: &str = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite some of the best blessings of existence; and had lived nearly twenty-one years in the world with very little to distress or vex her. She was the youngest of the two daughters of a most affectionate, indulgent father; and had, in consequence of her sister's marriage, been mistress of his house from a very early period.";

fn bench_llm(c: &mut Criterion) {
    let dir = std::path::Path::new(ROOT).join("weights/tiny-llama");
    let lm = CausalLm::from_dir(&dir, DType::F32, &Device::Cpu).expect("tiny-llama");
    let tok = DecoderTokenizer::from_dir(&dir, &lm).expect("tokenizer");
    let mut prompt = tok.encode(TEXT, false).expect("ids");
    prompt.truncate(96);
    let targets = lm
        .generate(&prompt, &GenerateConfig { stop: vec![], ..GenerateConfig::greedy(&lm, 16) })
        .expect("generation")
        .ids;
    let mut g = c.benchmark_group("llm_tiny_llama_p96_t16");
    g.sample_size(10);
    g.throughput(Throughput::Elements(targets.len() as u64));
    for (name, method) in [
        ("attnlrp", LlmMethod::AttnLrp { epsilon: 1e-10 }),
        ("cp_lrp", LlmMethod::CpLrp { epsilon: 1e-10 }),
        ("gradient_x_input", LlmMethod::GradientXInput),
        ("integrated_gradients_32", LlmMethod::IntegratedGradients { steps: 32, baseline: TokenBaseline::Zero }),
        ("ablation", LlmMethod::Ablation { baseline: TokenBaseline::Token(0), features: Default::default() }),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                attribute_continuation(&lm, &prompt, &targets, &method, Score::LogProb, Sources::Prompt, &[], &Batching::default())
                    .expect("attribution")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_llm);
