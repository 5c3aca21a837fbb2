//! Vectorizable `exp`, `erf`, GELU and softmax for the CPU forward pass.
//!
//! candle's CPU GELU and softmax call scalar libm `erf`/`exp` per element, which cost
//! about a third of the forward pass on a 2-core machine. These are plain arithmetic the
//! compiler turns into SIMD, accurate to a few f32 ulps (`exp`) and 5e-7 absolute
//! (`erf`, Abramowitz & Stegun 7.1.26, in f32): far below what changes an embedding.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^x for x in f32's normal range; below it gives ~1e-38 instead of 0 or a subnormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    // Round to nearest by the 1.5 · 2²³ trick: plain adds, so it vectorizes everywhere.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor to r⁶ on |r| ≤ ln2/2: error under 2e-7 relative.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The error function, to 5e-7 absolute (the approximation errs by 1.5e-7, f32 the rest).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// Runs `$body` compiled for AVX-512 where the CPU has it, else for the baseline.
macro_rules! simd_dispatch {
    ($avx512:ident, $generic:ident ( $($arg:ident),* )) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features `$avx512` is compiled for.
                return unsafe { $avx512($($arg),*) };
            }
        }
        $generic($($arg),*)
    }};
}

/// GELU (the exact, erf form BERT uses), in place.
pub fn gelu_in_place(values: &mut [f32]) {
    simd_dispatch!(gelu_avx512, gelu_generic(values))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,fma")]
unsafe fn gelu_avx512(values: &mut [f32]) {
    gelu_generic(values)
}

#[inline(always)]
fn gelu_generic(values: &mut [f32]) {
    for v in values {
        let x = *v;
        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `softmax(row · scale + bias)` for each `bias.len()`-long row of `rows`, in place;
/// row `i` takes its bias from `biases` row `i / rows_per_bias`. Rows run in parallel.
pub fn softmax_rows(
    rows: &mut [f32],
    scale: f32,
    biases: &[f32],
    seq: usize,
    rows_per_bias: usize,
) {
    use rayon::prelude::*;
    rows.par_chunks_mut(seq * rows_per_bias)
        .zip(biases.par_chunks(seq))
        .for_each(|(rows, bias)| {
            for row in rows.chunks_exact_mut(seq) {
                softmax_scaled_biased(row, scale, bias);
            }
        });
}

/// `softmax(row · scale + bias)` in place; `bias` is as long as `row`.
pub fn softmax_scaled_biased(row: &mut [f32], scale: f32, bias: &[f32]) {
    simd_dispatch!(softmax_avx512, softmax_generic(row, scale, bias))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,fma")]
unsafe fn softmax_avx512(row: &mut [f32], scale: f32, bias: &[f32]) {
    softmax_generic(row, scale, bias)
}

#[inline(always)]
fn softmax_generic(row: &mut [f32], scale: f32, bias: &[f32]) {
    let len = row.len().min(bias.len());
    let row = &mut row[..len];
    for (v, b) in row.iter_mut().zip(bias) {
        *v = *v * scale + b;
    }
    softmax_in_place(row);
}

/// `softmax(row)` in place; inlined into SIMD callers.
#[inline(always)]
pub fn softmax_in_place(row: &mut [f32]) {
    const LANES: usize = 16;
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut blocks = row.chunks_exact(LANES);
    for block in &mut blocks {
        for (v, m) in block.iter().zip(&mut max) {
            *m = m.max(*v);
        }
    }
    let tail_max = blocks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let max = max.iter().copied().fold(tail_max, f32::max);
    let mut sums = [0f32; LANES];
    let mut blocks = row.chunks_exact_mut(LANES);
    for block in &mut blocks {
        for (v, s) in block.iter_mut().zip(&mut sums) {
            *v = exp(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in blocks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libm_erf(x: f64) -> f64 {
        // erf from its Maclaurin series for |x| ≤ 3, else ±1 - tiny: reference enough.
        if x.abs() > 3.0 {
            return x.signum() * (1.0 - 2.2e-5);
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_accurate_across_the_range() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 4e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.173;
        }
        assert!(exp(-10_000.0) < 1e-37, "a masked score contributes nothing");
    }

    #[test]
    fn erf_and_gelu_match_their_definitions() {
        let mut x = -3.0f32;
        while x <= 3.0 {
            let want = libm_erf(f64::from(x));
            assert!(
                (f64::from(erf(x)) - want).abs() < 5e-7,
                "erf({x}) = {}, want {want}",
                erf(x)
            );
            x += 0.01;
        }
        let mut v = [-1.0f32, 0.0, 1.0, 2.0];
        gelu_in_place(&mut v);
        let want = [-0.158_655_25f32, 0.0, 0.841_344_7, 1.954_499_8];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "gelu {g} vs {w}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_ignores_masked_positions() {
        let mut row: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let mut bias = vec![0.0f32; 37];
        bias[36] = -10_000.0;
        softmax_scaled_biased(&mut row, 0.5, &bias);
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "sum {sum}");
        assert!(row[36] < 1e-30, "masked position got {}", row[36]);
        // Unmasked entries keep their ratios: e^(0.5·0.1) between neighbours.
        assert!((row[1] / row[0] - 0.05f32.exp()).abs() < 1e-5);
    }
}
