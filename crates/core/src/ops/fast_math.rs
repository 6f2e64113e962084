//! Branch-free f32 `exp`, `tanh`, sigmoid and normal CDF that the compiler vectorises, with an
//! AVX2 + FMA build of each loop chosen at run time.
//!
//! libm's scalar `erff` / `expf` made GELU 18 % of the BERT stack's forward + backward (the
//! profile in `benches/README.md`); PyTorch runs a vectorised polynomial there. Accuracy, checked
//! against f64 in the tests: `exp` within 2 ulp, `tanh` and the sigmoid within 3–4e-7
//! relative, the normal CDF of GELU within 5e-7 absolute (f32's resolution near 1 is 6e-8).

/// `e^x` for f32 (Cody–Waite reduction by ln 2, Cephes' degree-6 polynomial). Inputs below
/// −87.3 give ≈ 2⁻¹²⁶ instead of a subnormal or 0; inputs above 88.3 give e^88.3 ≈ 2.2e38
/// (f32's limit is e^88.72), never infinity.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits (|v| < 2²²).
    const ROUND: f32 = 12_582_912.0;
    // Below the smallest normal result the answer is 0: exactly, so that a masked attention
    // score (−1e9) gets exactly zero weight and padding exactly zero gradient.
    let underflow = x < -87.33;
    let x = x.clamp(-87.33, 88.3);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // n + 127 as the exponent: `shifted`'s bits are 0x4B40_0000 + n.
    let e = (shifted.to_bits() as i32 - 0x4B40_0000 + 127) as u32;
    let v = y * f32::from_bits(e << 23);
    if underflow {
        0.0
    } else {
        v
    }
}

/// `(Φ(z), φ(z))`, the standard normal CDF and density, sharing one `exp`: Abramowitz & Stegun
/// 7.1.26 for erf (|error| ≤ 1.5e-7 in exact arithmetic, ≤ 5e-7 on Φ after f32 rounding of its
/// alternating polynomial; the usual choice of vectorised CPU erf code) uses the same
/// `e^{−z²/2}` as the density.
#[inline(always)]
pub(crate) fn normal_cdf_pdf(z: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let u = z.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let e = exp(-0.5 * z * z);
    let t = 1.0 / (1.0 + P * u);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    // erf(|z|/√2) = 1 − poly·e; Φ(z) = (1 ± erf)/2 by the sign of z.
    let half_erfc = 0.5 * poly * e;
    let cdf = if z >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    (cdf, e * INV_SQRT_2PI)
}

/// `tanh` for f32: Cephes' odd polynomial below |x| = 0.625 (where `1 − 2/(e^{2x} + 1)`
/// would cancel), the exponential form above; both computed, one selected, so it vectorises.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let small = ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 0.133_314_42)
        * z
        - 0.333_332_8)
        * z
        * x
        + x;
    let large = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    if a < 0.625 {
        small
    } else {
        large.copysign(x)
    }
}

/// The logistic sigmoid `1 / (1 + e^{−x})` for f32.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `out[i] = f(a[i])`, through [`map2`]'s dispatch (the second operand is `a` again: the
/// same cache lines, so it costs no memory traffic).
#[inline(always)]
pub(crate) fn map1(a: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    map2(a, a, out, move |x, _| f(x))
}

/// `out[i] = f(a[i], b[i])`, compiled twice: once for AVX2 + FMA (picked when the CPU has
/// them) and once for the baseline target.
#[inline(always)]
pub(crate) fn map2(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32 + Copy) {
    #[inline(always)]
    fn body(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
            *o = f(*a, *b);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
            body(a, b, out, f)
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features were detected on this CPU.
            return unsafe { avx2(a, b, out, f) };
        }
    }
    body(a, b, out, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| (lo + (hi - lo) * i as f64 / n as f64) as f32)
    }

    #[test]
    fn exp_is_within_two_ulp() {
        for x in grid(-87.0, 88.0, 200_000).chain([0.0, -0.0, 1e-8, -1e-8]) {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            let ulp = want * f32::EPSILON as f64;
            assert!(
                (got - want).abs() <= 2.0 * ulp,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp(-200.0) >= 0.0 && exp(-200.0) < 1e-37);
        assert!(exp(200.0).is_finite());
    }

    #[test]
    fn normal_cdf_and_pdf_match_f64() {
        let erf = |x: f64| candle_core::cpu::erf::erf_f64(x);
        for z in grid(-12.0, 12.0, 100_000) {
            let (cdf, pdf) = normal_cdf_pdf(z);
            let z64 = z as f64;
            let want_cdf = 0.5 * (1.0 + erf(z64 / std::f64::consts::SQRT_2));
            let want_pdf = (-0.5 * z64 * z64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!(
                (cdf as f64 - want_cdf).abs() < 5e-7,
                "Φ({z}) = {cdf}, want {want_cdf}"
            );
            // −z²/2 rounded to f32 moves the exponent by up to z²·2⁻²⁴: a relative error of
            // the density that grows with z² (as in any f32 implementation).
            let rel = 3e-7 + z64 * z64 * 6e-8;
            assert!(
                (pdf as f64 - want_pdf).abs() <= rel * want_pdf,
                "φ({z}) = {pdf}, want {want_pdf}"
            );
        }
    }

    #[test]
    fn tanh_and_sigmoid_match_f64() {
        for x in grid(-30.0, 30.0, 200_000).chain([1e-6, -1e-6, 0.624_999, 0.625, -0.625]) {
            let x64 = x as f64;
            let (t, want_t) = (tanh(x) as f64, x64.tanh());
            assert!(
                (t - want_t).abs() <= 3e-7 * want_t.abs().max(1e-30),
                "tanh({x}) = {t}, want {want_t}"
            );
            let (s, want_s) = (sigmoid(x) as f64, 1.0 / (1.0 + (-x64).exp()));
            assert!(
                (s - want_s).abs() <= 4e-7 * want_s,
                "sigmoid({x}) = {s}, want {want_s}"
            );
        }
    }

    #[test]
    fn map2_equals_the_scalar_loop() {
        let a: Vec<f32> = grid(-5.0, 5.0, 1000).collect();
        let b: Vec<f32> = grid(2.0, -3.0, 1000).collect();
        let mut out = vec![0.0; a.len()];
        map2(&a, &b, &mut out, |a, b| a * exp(b));
        for i in 0..a.len() {
            assert_eq!(
                out[i].to_bits(),
                (a[i] * exp(b[i])).to_bits(),
                "element {i}"
            );
        }
    }
}
