"""One-run comparison of candle-explain with Captum on this CPU.

Runs benches/captum_cpu.py (PyTorch + Captum, 2 threads) and then the criterion bench
`mnist_cnn_b32_cpu` of this repository, back to back, and prints a Markdown table of
explanations per second and ratios (candle-explain / Captum; > 1 means faster).

    PYTHON=/path/to/venv/bin/python python3 benches/compare_cpu.py [--threads 2]

The venv needs torch and captum (see scripts/golden/); nothing here is used by CI.
"""
import argparse, json, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [("saliency", "saliency"), ("ig50", "ig50"), ("ig50_any_model", "ig50"), ("deeplift", "deeplift"),
         ("smoothgrad20", "smoothgrad20"), ("fwd_bwd_1600_ours", "raw_fwd_bwd")]


def criterion_median_s(group, name):
    p = os.path.join(ROOT, "target", "criterion", group, name, "new", "estimates.json")
    with open(p) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    py = os.environ.get("PYTHON", sys.executable)
    cap = json.loads(subprocess.run([py, os.path.join(ROOT, "benches", "captum_cpu.py"), "--threads", str(a.threads)],
                                    check=True, capture_output=True, text=True).stdout)
    subprocess.run(["cargo", "bench", "--bench", "bench_main", "--", "mnist_cnn_b32_cpu"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"torch {cap['torch']}, captum {cap['captum']}, {cap['threads']} threads, batch {cap['batch']}\n")
    print("| method | Captum s | candle-explain s | ratio (Captum time / ours) |")
    print("|---|---|---|---|")
    for ours, theirs in PAIRS:
        t_c = cap["results"][theirs]["median_s"]
        t_o = criterion_median_s("mnist_cnn_b32_cpu", ours)
        print(f"| {ours} | {t_c:.4f} | {t_o:.4f} | {t_c / t_o:.2f}× |")
    ig, fb = criterion_median_s("mnist_cnn_b32_cpu", "ig50"), criterion_median_s("mnist_cnn_b32_cpu", "fwd_bwd_1600_ours")
    stock = criterion_median_s("mnist_cnn_b32_cpu", "fwd_bwd_1600_stock")
    print(f"\nIG-50 / (50 batched fwd+bwd passes, ours) = {ig / fb:.3f}; stock Candle autograd fwd+bwd / ours = {stock / fb:.2f}")
    sal = criterion_median_s("mnist_cnn_b32_cpu", "saliency")
    for name in ["lrp_epsilon_plus", "lrp_epsilon_gamma_box", "guided_ig50"]:
        print(f"{name}: {criterion_median_s('mnist_cnn_b32_cpu', name):.4f} s = {criterion_median_s('mnist_cnn_b32_cpu', name) / sal:.2f}× saliency")


if __name__ == "__main__":
    main()
