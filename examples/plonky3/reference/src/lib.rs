//! An independent reference for the BabyBear DFTs: canonical values in `u64`, every product
//! reduced with `%`. Nothing here is shared with the candidate crates (`baby-bear`, `dft`), so a
//! bug there cannot hide by also being here. Slow and obvious on purpose:
//!
//! * a naive O(n²) DFT for heights up to [`NAIVE_MAX_HEIGHT`],
//! * a textbook iterative radix-2 NTT (one column at a time) above that,
//! * barycentric evaluation of the interpolant at arbitrary points, for spot checks.
//!
//! Matrices are row-major `Vec<u64>` with an explicit width; each column is one polynomial.
//!
//! Two small support modules live here too, because the read-only `gate` and `bench` both need
//! them and neither may depend on candidate code: [`harness`] (seeds, a deterministic generator,
//! a fast digest) and [`sha256`] (for the FRI proof's Merkle trees and transcript).

pub mod harness;
pub mod sha256;

/// The field order p = 2^31 − 2^27 + 1.
pub const P: u64 = 0x7800_0001;
/// The multiplicative generator of F_p^*.
pub const GENERATOR: u64 = 31;
/// Two-adicity of p − 1.
pub const TWO_ADICITY: usize = 27;
/// Heights up to this use the naive DFT; larger ones the NTT.
pub const NAIVE_MAX_HEIGHT: usize = 64;

#[inline]
pub fn add(a: u64, b: u64) -> u64 {
    (a + b) % P
}

#[inline]
pub fn sub(a: u64, b: u64) -> u64 {
    (a + P - b) % P
}

#[inline]
pub fn mul(a: u64, b: u64) -> u64 {
    a * b % P
}

pub fn pow(mut base: u64, mut e: u64) -> u64 {
    let mut acc = 1;
    base %= P;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    acc
}

/// Inverse by Fermat's little theorem. Panics on zero.
pub fn inv(a: u64) -> u64 {
    assert!(!a.is_multiple_of(P), "reference: inverse of zero");
    pow(a, P - 2)
}

/// The generator of the subgroup of order 2^bits: 31^((p − 1) / 2^bits).
pub fn two_adic_generator(bits: usize) -> u64 {
    assert!(bits <= TWO_ADICITY);
    pow(GENERATOR, (P - 1) >> bits)
}

fn log2_exact(n: usize) -> usize {
    assert!(n.is_power_of_two(), "height {n} is not a power of two");
    n.trailing_zeros() as usize
}

fn height_of(values: &[u64], width: usize) -> usize {
    assert!(width > 0 && values.len().is_multiple_of(width), "bad matrix shape");
    values.len() / width
}

/// out[i][c] = Σ_j in[j][c] · root^(i·j), computed directly.
pub fn naive_dft_with_root(values: &[u64], width: usize, root: u64) -> Vec<u64> {
    let h = height_of(values, width);
    let mut out = vec![0u64; values.len()];
    for i in 0..h {
        let step = pow(root, i as u64);
        let mut x = 1u64;
        for j in 0..h {
            for c in 0..width {
                out[i * width + c] = add(out[i * width + c], mul(values[j * width + c], x));
            }
            x = mul(x, step);
        }
    }
    out
}

/// In-place natural-order NTT of one column with the given root of order `col.len()`:
/// bit-reversal permutation, then log n layers of (a + ω·b, a − ω·b).
pub fn ntt_column(col: &mut [u64], root: u64) {
    let n = col.len();
    let log_n = log2_exact(n);
    if n == 1 {
        return;
    }
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS as usize - log_n);
        if i < j {
            col.swap(i, j);
        }
    }
    let mut m = 2;
    while m <= n {
        let w_m = pow(root, (n / m) as u64);
        for start in (0..n).step_by(m) {
            let mut w = 1u64;
            for k in 0..m / 2 {
                let a = col[start + k];
                let b = mul(col[start + k + m / 2], w);
                col[start + k] = add(a, b);
                col[start + k + m / 2] = sub(a, b);
                w = mul(w, w_m);
            }
        }
        m *= 2;
    }
}

fn transform_columns(values: &[u64], width: usize, root: u64) -> Vec<u64> {
    let h = height_of(values, width);
    if h <= NAIVE_MAX_HEIGHT {
        return naive_dft_with_root(values, width, root);
    }
    let mut out = vec![0u64; values.len()];
    let mut col = vec![0u64; h];
    for c in 0..width {
        for j in 0..h {
            col[j] = values[j * width + c];
        }
        ntt_column(&mut col, root);
        for i in 0..h {
            out[i * width + c] = col[i];
        }
    }
    out
}

/// Forward DFT, natural order: out[i][c] = Σ_j in[j][c] · g^(i·j), g of order h.
pub fn dft(values: &[u64], width: usize) -> Vec<u64> {
    let h = height_of(values, width);
    transform_columns(values, width, two_adic_generator(log2_exact(h)))
}

/// Inverse DFT: out[j][c] = h^(−1) Σ_i in[i][c] · g^(−i·j).
pub fn idft(values: &[u64], width: usize) -> Vec<u64> {
    let h = height_of(values, width);
    let g_inv = inv(two_adic_generator(log2_exact(h)));
    let h_inv = inv(h as u64 % P);
    transform_columns(values, width, g_inv).into_iter().map(|x| mul(x, h_inv)).collect()
}

/// Multiplies row j by shift^j.
pub fn scale_rows_by_powers(values: &mut [u64], width: usize, shift: u64) {
    let mut s = 1u64;
    for row in values.chunks_mut(width) {
        for x in row.iter_mut() {
            *x = mul(*x, s);
        }
        s = mul(s, shift);
    }
}

/// Coset DFT: out[i][c] = Σ_j in[j][c] · (shift · g^i)^j.
pub fn coset_dft(values: &[u64], width: usize, shift: u64) -> Vec<u64> {
    let mut v = values.to_vec();
    scale_rows_by_powers(&mut v, width, shift);
    dft(&v, width)
}

/// Coset low-degree extension: the input is each column's evaluations on the subgroup H of order
/// h; the output is the same polynomial's evaluations on shift · K, K of order h · 2^added_bits.
pub fn coset_lde(values: &[u64], width: usize, added_bits: usize, shift: u64) -> Vec<u64> {
    let mut coeffs = idft(values, width);
    coeffs.resize(values.len() << added_bits, 0);
    coset_dft(&coeffs, width, shift)
}

/// Evaluates, at a point `x`, the polynomials of degree < h that take the given values on the
/// subgroup H of order h (row j ↦ g^j). Barycentric form for a subgroup:
/// f(x) = (x^h − 1)/h · Σ_j y_j · g^j / (x − g^j), with the h denominators inverted in one batch.
/// The weights are computed once per point and reused for every column asked for.
pub struct PointEvaluator {
    /// Either the row index when x lies in H, or the weights g^j (x^h − 1) / (h (x − g^j)).
    kind: PointKind,
}

enum PointKind {
    InSubgroup(usize),
    Weights(Vec<u64>),
}

impl PointEvaluator {
    pub fn new(height: usize, x: u64) -> Self {
        let log_h = log2_exact(height);
        let g = two_adic_generator(log_h);
        let x = x % P;
        let mut points = Vec::with_capacity(height);
        let mut gj = 1u64;
        for _ in 0..height {
            points.push(gj);
            gj = mul(gj, g);
        }
        if let Some(j) = points.iter().position(|&p| p == x) {
            return Self { kind: PointKind::InSubgroup(j) };
        }
        // Batch inversion of (x − g^j).
        let diffs: Vec<u64> = points.iter().map(|&p| sub(x, p)).collect();
        let mut prefix = Vec::with_capacity(height);
        let mut acc = 1u64;
        for &d in &diffs {
            prefix.push(acc);
            acc = mul(acc, d);
        }
        let mut acc_inv = inv(acc);
        let mut weights = vec![0u64; height];
        let scale = mul(sub(pow(x, height as u64), 1), inv(height as u64 % P));
        for j in (0..height).rev() {
            let d_inv = mul(acc_inv, prefix[j]);
            acc_inv = mul(acc_inv, diffs[j]);
            weights[j] = mul(mul(points[j], d_inv), scale);
        }
        Self { kind: PointKind::Weights(weights) }
    }

    /// f_c(x) for column `column` of the row-major `values` (evaluations on H).
    pub fn eval_column(&self, values: &[u64], width: usize, column: usize) -> u64 {
        self.eval_columns(values, width, &[column])[0]
    }

    /// f_c(x) for each listed column, in one pass over the rows.
    pub fn eval_columns(&self, values: &[u64], width: usize, columns: &[usize]) -> Vec<u64> {
        match &self.kind {
            PointKind::InSubgroup(j) => columns.iter().map(|&c| values[j * width + c] % P).collect(),
            PointKind::Weights(w) => {
                // Products are below 2^62; a u128 accumulator needs no reduction per term.
                let mut acc = vec![0u128; columns.len()];
                for (row, &wj) in values.chunks_exact(width).zip(w) {
                    for (a, &c) in acc.iter_mut().zip(columns) {
                        *a += (wj * (row[c] % P)) as u128;
                    }
                }
                acc.into_iter().map(|a| (a % P as u128) as u64).collect()
            }
        }
    }
}

/// Bit-reversal of the low `bits` bits of `i`.
pub fn reverse_bits(i: usize, bits: usize) -> usize {
    if bits == 0 { 0 } else { i.reverse_bits() >> (usize::BITS as usize - bits) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) % P
    }

    #[test]
    fn known_generators() {
        assert_eq!(two_adic_generator(27), 0x1a42_7a41);
        assert_eq!(two_adic_generator(1), P - 1);
        assert_eq!(mul(0x3416_7c58, 0x61f3_207b), 0x1b5c_8046);
    }

    #[test]
    fn ntt_matches_naive_and_inverts() {
        let mut s = 7;
        for log_h in 0..9 {
            let h = 1 << log_h;
            let width = 3;
            let v: Vec<u64> = (0..h * width).map(|_| lcg(&mut s)).collect();
            let g = two_adic_generator(log_h);
            let want = naive_dft_with_root(&v, width, g);
            let mut got = vec![0; v.len()];
            for c in 0..width {
                let mut col: Vec<u64> = (0..h).map(|j| v[j * width + c]).collect();
                ntt_column(&mut col, g);
                for i in 0..h {
                    got[i * width + c] = col[i];
                }
            }
            assert_eq!(got, want, "log_h {log_h}");
            assert_eq!(idft(&dft(&v, width), width), v);
        }
    }

    #[test]
    fn lde_agrees_with_barycentric_evaluation() {
        let mut s = 9;
        let (h, width, added_bits, shift) = (128usize, 2usize, 2usize, GENERATOR);
        let v: Vec<u64> = (0..h * width).map(|_| lcg(&mut s)).collect();
        let lde = coset_lde(&v, width, added_bits, shift);
        let big_g = two_adic_generator(7 + added_bits);
        for i in [0usize, 1, 77, 511] {
            let x = mul(shift, pow(big_g, i as u64));
            let ev = PointEvaluator::new(h, x);
            for c in 0..width {
                assert_eq!(ev.eval_column(&v, width, c), lde[i * width + c]);
            }
        }
        // Shift 1 and no added bits gives the input back (points inside H).
        assert_eq!(coset_lde(&v, width, 0, 1), v);
        assert_eq!(PointEvaluator::new(h, 1).eval_column(&v, width, 1), v[1]);
    }
}
