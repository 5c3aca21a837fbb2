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

/// The dot product of two slices of equal length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn rows_avx512(query: &[f32], matrix: &[f32], out: &mut Vec<f32>) {
    for row in matrix.chunks_exact(query.len()) {
        out.push(dot_generic(query, row));
    }
}

fn rows_generic(query: &[f32], matrix: &[f32], out: &mut Vec<f32>) {
    for row in matrix.chunks_exact(query.len()) {
        out.push(dot_generic(query, row));
    }
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] = x[k].mul_add(y[k], acc[k]);
        }
    }
    let mut sum = 0.0;
    for a in acc {
        sum += a;
    }
    for (x, y) in ra.iter().zip(rb) {
        sum = x.mul_add(*y, sum);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_match_a_plain_loop() {
        let dim = 37; // not a multiple of the lanes
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
    }
}
