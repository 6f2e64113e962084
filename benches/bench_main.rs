//! Criterion throughput benchmarks. `cargo bench` runs them on the CPU; with `--features
//! cuda` (or `metal`) on that device. Throughput is reported in explanations per second.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod benchmarks;

criterion::criterion_main!(
    benchmarks::methods::benches,
    benchmarks::metrics::benches,
    benchmarks::families::benches,
    benchmarks::op_stacks::benches
);
