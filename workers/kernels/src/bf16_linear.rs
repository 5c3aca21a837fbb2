//! Linear layers on CPU in bfloat16, with the AVX-512 BF16 dot-product instruction
//! (`vdpbf16ps`): twice the multiply-adds per instruction of f32 FMA, accumulated in f32.
//!
//! Weights are rounded to bf16 and packed once, at load, into panels of 48 output
//! columns laid out in the order the kernel reads them. Each call rounds its input rows
//! to bf16 (a chunk at a time, per thread) and computes `x · Wᵀ + b` in f32.
//!
//! Only used where the CPU has `avx512f` and `avx512bf16` ([`PackedLinear::supported`]);
//! elsewhere the model keeps candle's f32 matmul.

/// Output columns per panel: three 16-lane registers.
const NR: usize = 48;
/// Rows per micro-tile: 8 × 3 accumulators, 24 of the 32 vector registers.
const MR: usize = 8;
/// Rows per thread's chunk: its bf16 copy (64 × 1536 × 2 bytes at most for MiniLM)
/// stays in L2 while every panel passes over it.
const MC: usize = 64;

/// `y = x · Wᵀ + b` with W packed for the kernel.
pub struct PackedLinear {
    /// Output features.
    n: usize,
    /// Input features.
    k: usize,
    /// Pairs of input features (`k` rounded up to even, halved).
    k_pairs: usize,
    /// `[panel][k_pair][48 columns]`, each u32 two bf16: feature 2p low, 2p+1 high.
    panels: Vec<u32>,
    /// Padded to whole panels with zeros.
    bias: Vec<f32>,
}

/// Rounds to the nearest bf16, ties to even (what `vcvtne2ps2bf16` does).
fn bf16_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) | 0x40;
    }
    (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
}

fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) | (bf16_bits(hi) << 16)
}

impl PackedLinear {
    /// Whether this CPU can run the kernel.
    pub fn supported() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Packs a weight `[n, k]` (PyTorch's `Linear` layout, row-major) and its bias `[n]`.
    pub fn pack(weight: &[f32], bias: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(weight.len(), n * k, "weight is [n, k]");
        assert_eq!(bias.len(), n, "bias is [n]");
        let k_pairs = k.div_ceil(2);
        let n_panels = n.div_ceil(NR);
        let mut panels = vec![0u32; n_panels * k_pairs * NR];
        let at = |row: usize, col: usize| -> f32 {
            if row < n && col < k {
                weight[row * k + col]
            } else {
                0.0
            }
        };
        for panel in 0..n_panels {
            for p in 0..k_pairs {
                let base = (panel * k_pairs + p) * NR;
                for lane in 0..NR {
                    let row = panel * NR + lane;
                    panels[base + lane] = pair(at(row, 2 * p), at(row, 2 * p + 1));
                }
            }
        }
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(n_panels * NR, 0.0);
        Self {
            n,
            k,
            k_pairs,
            panels,
            bias: padded_bias,
        }
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    /// `x` is `[rows, k]` row-major; returns `[rows, n]`, through GELU if `gelu`.
    pub fn forward(&self, x: &[f32], gelu: bool) -> Vec<f32> {
        assert_eq!(x.len() % self.k.max(1), 0, "input rows have k features");
        let rows = x.len() / self.k.max(1);
        let mut out = vec![0f32; rows * self.n];
        if rows == 0 {
            return out;
        }
        use rayon::prelude::*;
        out.par_chunks_mut(MC * self.n)
            .zip(x.par_chunks(MC * self.k))
            .for_each(|(out, x)| {
                self.chunk(x, out);
                if gelu {
                    // While the chunk is still in cache.
                    crate::fastmath::gelu_in_place(out);
                }
            });
        out
    }

    /// One chunk of at most `MC` rows, on the calling thread.
    fn chunk(&self, x: &[f32], out: &mut [f32]) {
        let rows = x.len() / self.k;
        let mut a = vec![0u32; rows * self.k_pairs];
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `pack`'s callers check `supported()`;
            // every pointer offset below stays inside `x`, `a`, `panels`, `bias` and `out`.
            unsafe {
                kernel::to_bf16_pairs(x, self.k, &mut a, self.k_pairs);
                kernel::chunk(self, &a, rows, out)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, out);
            unreachable!("PackedLinear::supported() is false off x86_64");
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::{MR, NR, PackedLinear, pair};

    /// Rows of `k` floats → rows of `k_pairs` bf16 pairs, 32 floats per instruction.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn to_bf16_pairs(x: &[f32], k: usize, a: &mut [u32], k_pairs: usize) {
        for (row, dst) in x.chunks_exact(k).zip(a.chunks_exact_mut(k_pairs)) {
            let whole = k / 32;
            for block in 0..whole {
                unsafe {
                    let lo = _mm512_loadu_ps(row.as_ptr().add(block * 32));
                    let hi = _mm512_loadu_ps(row.as_ptr().add(block * 32 + 16));
                    let packed = _mm512_cvtne2ps_pbh(hi, lo);
                    _mm512_storeu_si512(
                        dst.as_mut_ptr().add(block * 16).cast(),
                        std::mem::transmute::<__m512bh, __m512i>(packed),
                    );
                }
            }
            for (p, d) in dst.iter_mut().enumerate().skip(whole * 16) {
                let lo = row[2 * p];
                let hi = row.get(2 * p + 1).copied().unwrap_or(0.0);
                *d = pair(lo, hi);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn chunk(w: &PackedLinear, a: &[u32], rows: usize, out: &mut [f32]) {
        let n_panels = w.bias.len() / NR;
        for panel in 0..n_panels {
            let b = unsafe { w.panels.as_ptr().add(panel * w.k_pairs * NR) };
            let bias = unsafe { w.bias.as_ptr().add(panel * NR) };
            let cols = (w.n - panel * NR).min(NR);
            let mut r = 0;
            while r < rows {
                let a = unsafe { a.as_ptr().add(r * w.k_pairs) };
                let c = unsafe { out.as_mut_ptr().add(r * w.n + panel * NR) };
                let t = (rows - r).min(MR);
                unsafe {
                    match t {
                        8 => tile::<8>(a, w.k_pairs, b, bias, c, w.n, cols),
                        7 => tile::<7>(a, w.k_pairs, b, bias, c, w.n, cols),
                        6 => tile::<6>(a, w.k_pairs, b, bias, c, w.n, cols),
                        5 => tile::<5>(a, w.k_pairs, b, bias, c, w.n, cols),
                        4 => tile::<4>(a, w.k_pairs, b, bias, c, w.n, cols),
                        3 => tile::<3>(a, w.k_pairs, b, bias, c, w.n, cols),
                        2 => tile::<2>(a, w.k_pairs, b, bias, c, w.n, cols),
                        _ => tile::<1>(a, w.k_pairs, b, bias, c, w.n, cols),
                    }
                }
                r += t;
            }
        }
    }

    /// `R` rows × 48 columns over the whole depth: `c = a · b + bias`.
    /// `a` is `R` rows of `k_pairs` bf16 pairs; `b` one panel; `c` has row stride `ldc`
    /// and `cols` valid columns.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn tile<const R: usize>(
        a: *const u32,
        k_pairs: usize,
        b: *const u32,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 3]; R];
        for p in 0..k_pairs {
            let (b0, b1, b2): (__m512bh, __m512bh, __m512bh) = unsafe {
                let bp = b.add(p * NR);
                (
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp.cast())),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp.add(16).cast())),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp.add(32).cast())),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let x: __m512bh = unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                        *a.add(r * k_pairs + p) as i32,
                    ))
                };
                acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
                acc[2] = _mm512_dpbf16_ps(acc[2], x, b2);
            }
        }
        let biases = unsafe {
            [
                _mm512_loadu_ps(bias),
                _mm512_loadu_ps(bias.add(16)),
                _mm512_loadu_ps(bias.add(32)),
            ]
        };
        for (r, acc) in acc.iter().enumerate() {
            for v in 0..3 {
                let value = _mm512_add_ps(acc[v], biases[v]);
                let first = v * 16;
                if first >= cols {
                    break;
                }
                let lanes = (cols - first).min(16);
                let mask: __mmask16 = if lanes == 16 {
                    0xffff
                } else {
                    (1u16 << lanes) - 1
                };
                unsafe { _mm512_mask_storeu_ps(c.add(r * ldc + first), mask, value) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], b: &[f32], n: usize, k: usize) -> Vec<f32> {
        let rows = x.len() / k;
        let mut y = vec![0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|i| f64::from(x[r * k + i]) * f64::from(w[j * k + i]))
                    .sum();
                y[r * n + j] = dot as f32 + b[j];
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // Just above halfway rounds up.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
        assert_eq!(bf16_bits(-2.0), 0xc000);
    }

    #[test]
    fn matches_f32_within_bf16_error_for_ragged_shapes() {
        if !PackedLinear::supported() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        // Odd k (a padded pair), n not a multiple of 48, rows not a multiple of 8 or 64.
        for &(rows, n, k) in &[(1, 5, 3), (13, 50, 31), (70, 96, 64), (129, 384, 384)] {
            let (x, w, b) = (values(rows * k, 1), values(n * k, 2), values(n, 3));
            let got = PackedLinear::pack(&w, &b, n, k).forward(&x, false);
            let want = reference(&x, &w, &b, n, k);
            assert_eq!(got.len(), want.len());
            // Each product carries two bf16 roundings (relative 2^-8 each); the sum of k
            // such terms of magnitude ≤ 0.25 errs by well under k · 2^-9 in the worst case.
            let bound = k as f32 * 0.25 * 2.0 / 256.0 / 4.0 + 1e-6;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= bound,
                    "rows {rows} n {n} k {k} at {i}: {g} vs {w} (bound {bound})"
                );
            }
        }
    }
}
