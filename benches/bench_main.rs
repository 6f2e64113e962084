//! Criterion throughput benchmarks. `cargo bench` runs them on the CPU; with `--features
//! cuda` (or `metal`) on that device. Throughput is reported in explanations per second.

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

mod benchmarks;

// `criterion_main!` with the allocator setting of our binaries first.
fn main() {
    candle_explain::alloc::retain_freed_memory();
    benchmarks::methods::benches();
    benchmarks::metrics::benches();
    benchmarks::families::benches();
    benchmarks::op_stacks::benches();
    benchmarks::padded_text::benches();
    benchmarks::llm::benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
