//! Scaled dot-product attention on CPU with AVX-512: one task per sequence, over its
//! real tokens only.
//!
//! Padding sits at the end of each sequence, so real tokens never attend to it and its
//! own outputs are never read (pooling masks them): attending over the first `len`
//! tokens gives the same vectors as masking and skips all work on padding. Scores for a
//! head stay in L1/L2 between the two products and the softmax; the projections are read
//! straight from the fused `[seq, 3 × hidden]` QKV output, without transposes.

use rayon::prelude::*;

/// Query rows per QKᵀ tile (8 accumulators).
const QK_ROWS: usize = 8;
/// Rows per P·V tile: 4 × (head_dim / 16) accumulators.
const PV_ROWS: usize = 4;

/// Whether [`attention`] runs here, for heads of this size.
pub fn supported(head_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && head_dim.is_multiple_of(16)
            && (16..=64).contains(&head_dim)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = head_dim;
        false
    }
}

/// `qkv` holds the rows of consecutive sequences, `3 × heads × head_dim` floats a row
/// (queries, keys, values); sequence `i` takes `rows[i]` rows, of which the first
/// `lengths[i]` are real tokens (the rest padding; `rows == lengths` for packed input).
/// Returns the context, `heads × head_dim` floats a row, zero at padded rows. Callers
/// check [`supported`].
pub fn attention(
    qkv: &[f32],
    rows: &[usize],
    lengths: &[usize],
    heads: usize,
    head_dim: usize,
) -> Vec<f32> {
    let hidden = heads * head_dim;
    let total: usize = rows.iter().sum();
    assert_eq!(qkv.len(), total * 3 * hidden, "qkv holds every row");
    assert_eq!(rows.len(), lengths.len(), "a length per sequence");
    let mut out = vec![0f32; total * hidden];
    // Each sequence's rows of input and output, split off in order.
    let mut work = Vec::with_capacity(rows.len());
    let (mut out_rest, mut qkv_rest) = (out.as_mut_slice(), qkv);
    for (&n, &len) in rows.iter().zip(lengths) {
        let (out_seq, o) = out_rest.split_at_mut(n * hidden);
        let (qkv_seq, q) = qkv_rest.split_at(n * 3 * hidden);
        (out_rest, qkv_rest) = (o, q);
        work.push((out_seq, qkv_seq, len.min(n)));
    }
    work.into_par_iter().for_each(|(out, qkv, len)| {
        let shape = Shape {
            len,
            heads,
            head_dim,
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supported()` checked AVX-512F and the head size; the kernel reads
        // `len` rows of `qkv` and writes `len` rows of `out`, both at least that long.
        unsafe {
            kernel::sequence(qkv, out, shape)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (out, qkv, shape);
            unreachable!("attention::supported() is false off x86_64");
        }
    });
    out
}

#[derive(Clone, Copy)]
struct Shape {
    len: usize,
    heads: usize,
    head_dim: usize,
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::{PV_ROWS, QK_ROWS, Shape};
    use crate::fastmath;

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn sequence(qkv: &[f32], out: &mut [f32], s: Shape) {
        let Shape {
            len,
            heads,
            head_dim: hd,
        } = s;
        if len == 0 {
            return;
        }
        let hidden = heads * hd;
        let blocks = len.div_ceil(16);
        let padded = blocks * 16;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut q = vec![0f32; len * hd];
        let mut kt = vec![0f32; blocks * hd * 16];
        let mut scores = vec![0f32; QK_ROWS * padded];
        for head in 0..heads {
            // Scaled queries, row-major; keys as [block][d][16 keys], zero beyond `len`.
            for i in 0..len {
                let src = &qkv[i * 3 * hidden + head * hd..][..hd];
                for (d, s) in q[i * hd..][..hd].iter_mut().zip(src) {
                    *d = s * scale;
                }
            }
            for j in 0..len {
                let src = &qkv[j * 3 * hidden + hidden + head * hd..][..hd];
                let (block, lane) = (j / 16, j % 16);
                for (d, &k) in src.iter().enumerate() {
                    kt[(block * hd + d) * 16 + lane] = k;
                }
            }
            let values = unsafe { qkv.as_ptr().add(2 * hidden + head * hd) };
            let mut i = 0;
            while i < len {
                let rows = (len - i).min(QK_ROWS);
                unsafe { scores_tile(&q[i * hd..], hd, &kt, blocks, rows, &mut scores, padded) };
                for r in 0..rows {
                    fastmath::softmax_in_place(&mut scores[r * padded..r * padded + len]);
                }
                let mut r = 0;
                while r < rows {
                    let tile = (rows - r).min(PV_ROWS);
                    let dst = unsafe { out.as_mut_ptr().add((i + r) * hidden + head * hd) };
                    let p = &scores[r * padded..];
                    // One monomorphized tile per head size (16 to 64, whole registers).
                    macro_rules! context {
                        ($v:literal) => {
                            unsafe {
                                context_tile::<$v>(
                                    p,
                                    padded,
                                    tile,
                                    len,
                                    values,
                                    3 * hidden,
                                    dst,
                                    hidden,
                                )
                            }
                        };
                    }
                    match hd / 16 {
                        1 => context!(1),
                        2 => context!(2),
                        3 => context!(3),
                        _ => context!(4),
                    }
                    r += tile;
                }
                i += rows;
            }
        }
    }

    /// Scores of `rows` (≤ 8) query rows against every key block.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    unsafe fn scores_tile(
        q: &[f32],
        hd: usize,
        kt: &[f32],
        blocks: usize,
        rows: usize,
        scores: &mut [f32],
        padded: usize,
    ) {
        for block in 0..blocks {
            let mut acc = [_mm512_setzero_ps(); QK_ROWS];
            let keys = unsafe { kt.as_ptr().add(block * hd * 16) };
            for d in 0..hd {
                let k = unsafe { _mm512_loadu_ps(keys.add(d * 16)) };
                for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(q[r * hd + d]), k, *acc);
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                unsafe { _mm512_storeu_ps(scores.as_mut_ptr().add(r * padded + block * 16), *acc) };
            }
        }
    }

    /// `dst[r] = Σ_j p[r][j] · v[j]` for `rows` (≤ 4) rows of `V × 16` values.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn context_tile<const V: usize>(
        p: &[f32],
        padded: usize,
        rows: usize,
        len: usize,
        values: *const f32,
        value_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; PV_ROWS];
        for j in 0..len {
            let v_row = unsafe { values.add(j * value_stride) };
            let mut v = [_mm512_setzero_ps(); V];
            for (x, v) in v.iter_mut().enumerate() {
                *v = unsafe { _mm512_loadu_ps(v_row.add(x * 16)) };
            }
            for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                let weight = _mm512_set1_ps(p[r * padded + j]);
                for x in 0..V {
                    acc[x] = _mm512_fmadd_ps(weight, v[x], acc[x]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(rows) {
            for (x, acc) in acc.iter().enumerate() {
                unsafe { _mm512_storeu_ps(dst.add(r * dst_stride + x * 16), *acc) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention by its definition, in f64, over the first `len` tokens.
    fn reference(qkv: &[f32], len: usize, seq: usize, heads: usize, hd: usize) -> Vec<f32> {
        let h = heads * hd;
        let mut out = vec![0f32; seq * h];
        for head in 0..heads {
            for i in 0..len {
                let q = |d: usize| f64::from(qkv[i * 3 * h + head * hd + d]);
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        (0..hd)
                            .map(|d| q(d) * f64::from(qkv[j * 3 * h + h + head * hd + d]))
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for d in 0..hd {
                    let v: f64 = (0..len)
                        .map(|j| exps[j] / sum * f64::from(qkv[j * 3 * h + 2 * h + head * hd + d]))
                        .sum();
                    out[i * h + head * hd + d] = v as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_and_leaves_padding_zero() {
        for hd in [16, 32, 64] {
            if !supported(hd) {
                eprintln!("skipped: no AVX-512F");
                return;
            }
            let (heads, seq) = (3, 37);
            let lengths = [37, 21, 1];
            let mut state = 7u32;
            let qkv: Vec<f32> = (0..lengths.len() * seq * 3 * heads * hd)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
                })
                .collect();
            // Padded: every sequence `seq` rows.
            let got = attention(&qkv, &[seq; 3], &lengths, heads, hd);
            let h = heads * hd;
            for (b, &len) in lengths.iter().enumerate() {
                let want = reference(
                    &qkv[b * seq * 3 * h..(b + 1) * seq * 3 * h],
                    len,
                    seq,
                    heads,
                    hd,
                );
                let got = &got[b * seq * h..(b + 1) * seq * h];
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < 2e-5,
                        "hd {hd} sequence {b} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
