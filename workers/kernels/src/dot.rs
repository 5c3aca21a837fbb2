//! Dot products of one query against every row of a matrix: the embedded vector
//! store's exact search. Sixteen independent accumulators let the compiler keep the
//! loop in SIMD registers (f32 addition is not reassociated otherwise); the same code
//! is compiled for AVX-512 and chosen at run time where the CPU has it.

/// `out[i]` = the dot product of `query` and row `i` of `matrix` (rows of
/// `query.len()` floats, one after another). `out` is cleared first.
pub fn dot_rows(query: &[f32], matrix: &[f32], out: &mut Vec<f32>) {
    out.clear();
    let dim = query.len();
    if dim == 0 {
        out.resize(matrix.len(), 0.0);
        return;
    }
    out.reserve(matrix.len() / dim);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features `rows_avx512` is compiled for.
            unsafe { rows_avx512(query, matrix, out) };
            return;
        }
    }
    rows_generic(query, matrix, out);
}

/// The dot product of two slices of equal length, the same value `dot_rows` gives
/// for that row.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if a.len() == b.len() && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features `dot_avx512` is compiled for.
            return unsafe { dot_avx512(a, b) };
        }
    }
    dot_generic(a, b)
}

/// `out[i]` = the dot product of `query` and row `i` of `codes` (int8 rows of
/// `query.len()`), times `scales[i]`: the approximate scores of rows quantized as
/// `value ≈ code × scale`. `out` is cleared first. A quarter of the memory of f32
/// rows is read, which is what bounds a scan of a large collection.
pub fn dot_rows_i8(query: &[f32], codes: &[i8], scales: &[f32], out: &mut Vec<f32>) {
    out.clear();
    let dim = query.len();
    if dim == 0 {
        out.resize(scales.len(), 0.0);
        return;
    }
    out.reserve(codes.len() / dim);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features `rows_i8_avx512` is compiled for.
            unsafe { rows_i8_avx512(query, codes, scales, out) };
            return;
        }
    }
    for (row, scale) in codes.chunks_exact(dim).zip(scales) {
        let sum: f32 = query.iter().zip(row).map(|(q, &c)| q * c as f32).sum();
        out.push(sum * scale);
    }
}

/// Sixteen int8 codes widened to f32 per step (`vpmovsxbd`, `vcvtdq2ps`), multiplied
/// into two accumulators; the tail by a masked load.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_i8_avx512(query: &[f32], codes: &[i8], scales: &[f32], out: &mut Vec<f32>) {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm512_add_ps, _mm512_cvtepi8_epi32, _mm512_cvtepi32_ps,
        _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let dim = query.len();
    let q = query.as_ptr();
    let widen = |p: *const i8| {
        // SAFETY: the caller passes a pointer to 16 readable codes.
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i))) }
    };
    for (row, scale) in codes.chunks_exact(dim).zip(scales) {
        let r = row.as_ptr();
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: each step reads 16 codes and 16 floats at `i` with `i + 16 <= dim`,
        // within both slices.
        unsafe {
            while i + 32 <= dim {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), widen(r.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i + 16)), widen(r.add(i + 16)), acc1);
                i += 32;
            }
            if i + 16 <= dim {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), widen(r.add(i)), acc0);
                i += 16;
            }
        }
        let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        // The last `dim - i < 16` codes one by one (a masked load of bytes needs
        // AVX-512BW, which this kernel does not ask for).
        sum += query[i..]
            .iter()
            .zip(&row[i..])
            .map(|(q, &c)| q * c as f32)
            .sum::<f32>();
        out.push(sum * scale);
    }
}

/// AVX-512 with explicit intrinsics: two 16-lane accumulators, the tail by a masked
/// load. (A portable loop with `mul_add` compiled to a call of libm's scalar `fmaf` per
/// element, five times slower than this.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512(query: &[f32], matrix: &[f32], out: &mut Vec<f32>) {
    for row in matrix.chunks_exact(query.len()) {
        // SAFETY: the same features; `row` has `query.len()` floats.
        out.push(unsafe { dot_avx512(query, row) });
    }
}

/// One row's dot product (`query` and `row` of equal length).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_avx512(query: &[f32], row: &[f32]) -> f32 {
    use std::arch::x86_64::{
        _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps,
        _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let dim = query.len().min(row.len());
    let (q, r) = (query.as_ptr(), row.as_ptr());
    let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    // SAFETY: every load reads 16 floats at `i` with `i + 16 <= dim`, or the masked
    // tail reads only the `dim - i < 16` floats left, within both slices.
    unsafe {
        while i + 32 <= dim {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), _mm512_loadu_ps(r.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(q.add(i + 16)),
                _mm512_loadu_ps(r.add(i + 16)),
                acc1,
            );
            i += 32;
        }
        if i + 16 <= dim {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), _mm512_loadu_ps(r.add(i)), acc0);
            i += 16;
        }
        if i < dim {
            let mask = (1u16 << (dim - i)) - 1;
            let tail = _mm512_mul_ps(
                _mm512_maskz_loadu_ps(mask, q.add(i)),
                _mm512_maskz_loadu_ps(mask, r.add(i)),
            );
            acc1 = _mm512_add_ps(acc1, tail);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

fn rows_generic(query: &[f32], matrix: &[f32], out: &mut Vec<f32>) {
    for row in matrix.chunks_exact(query.len()) {
        out.push(dot_generic(query, row));
    }
}

/// Plain multiply-add in sixteen lanes, which the compiler vectorizes for any target
/// (`mul_add` would be a libm call where FMA is not enabled at compile time).
#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    let mut sum = 0.0;
    for a in acc {
        sum += a;
    }
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_rows_match_a_plain_loop_for_every_tail() {
        for dim in [1, 15, 16, 17, 31, 32, 33, 48, 384, 385] {
            let query: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
            let codes: Vec<i8> = (0..dim * 5)
                .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
                .collect();
            let scales = [0.5, 1.0, 0.01, 2.0, 0.0];
            let mut out = vec![42.0];
            dot_rows_i8(&query, &codes, &scales, &mut out);
            assert_eq!(out.len(), 5);
            for (i, row) in codes.chunks_exact(dim).enumerate() {
                let plain: f32 = query
                    .iter()
                    .zip(row)
                    .map(|(q, &c)| q * c as f32)
                    .sum::<f32>()
                    * scales[i];
                assert!(
                    (out[i] - plain).abs() < 1e-3 * plain.abs().max(1.0),
                    "dim {dim} row {i}: {} vs {plain}",
                    out[i]
                );
            }
        }
    }

    #[test]
    fn rows_match_a_plain_loop_for_every_tail() {
        for dim in [1, 15, 16, 17, 31, 32, 33, 48, 384, 385] {
            rows_match_a_plain_loop(dim);
        }
    }

    fn rows_match_a_plain_loop(dim: usize) {
        let query: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let matrix: Vec<f32> = (0..dim * 5).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut out = vec![42.0];
        dot_rows(&query, &matrix, &mut out);
        assert_eq!(out.len(), 5);
        for (i, row) in matrix.chunks_exact(dim).enumerate() {
            let plain: f32 = query.iter().zip(row).map(|(a, b)| a * b).sum();
            assert!(
                (out[i] - plain).abs() < 1e-4,
                "row {i}: {} vs {plain}",
                out[i]
            );
            assert!((dot(&query, row) - plain).abs() < 1e-4);
        }
        let mut generic = Vec::new();
        rows_generic(&query, &matrix, &mut generic);
        for (fast, portable) in out.iter().zip(&generic) {
            assert!(
                (fast - portable).abs() < 1e-4,
                "dim {dim}: {fast} vs {portable}"
            );
        }
    }
}
