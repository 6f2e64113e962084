//! With the `cuda` feature: compiles `kernels/*.cu` to PTX with nvcc (from `CUDA_HOME`,
//! `CUDA_PATH` or `PATH`) for `CUDA_COMPUTE_CAP` (default 80: runs on A100, H100 and later
//! through the driver's JIT). Without it nothing happens: CPU-only builds need no CUDA.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels/attribution.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| std::path::Path::new(&root).join("bin").join("nvcc"))
        .find(|p| p.exists())
        .unwrap_or_else(|| "nvcc".into());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap = cap.trim().trim_end_matches(['a', 'f']).replace('.', "");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("attribution.ptx");
    let status = std::process::Command::new(&nvcc)
        .args([
            "--ptx",
            "-O3",
            "-std=c++17",
            &format!("-arch=compute_{cap}"),
        ])
        .arg("kernels/attribution.cu")
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("the cuda feature needs nvcc ({}): {e}", nvcc.display()));
    assert!(status.success(), "nvcc failed on kernels/attribution.cu");
}
