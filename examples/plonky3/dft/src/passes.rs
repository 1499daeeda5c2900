//! Whole-matrix passes other than the butterflies: row permutations and row scalings.
//! Each runs on up to `threads` threads over contiguous row ranges, with packed arithmetic.

use crate::parallel::{chunk_len, par_for_each, threads_for};
use baby_bear::{BabyBear, Kernel, PackedBabyBear, Simd};

/// Multiplies one row by `s` (packed chunks, then the leftover columns).
#[inline(always)]
pub(crate) fn scale_row<P: PackedBabyBear>(row: &mut [BabyBear], s: BabyBear) {
    let sv = P::broadcast(s);
    let full = row.len() / P::WIDTH * P::WIDTH;
    let (packed, rest) = row.split_at_mut(full);
    for chunk in packed.chunks_exact_mut(P::WIDTH) {
        (P::load(chunk) * sv).store(chunk);
    }
    for x in rest {
        *x *= s;
    }
}

/// Multiplies row `r` of `rows` by `first · step^r`.
struct ScaleRowsKernel<'a> {
    rows: &'a mut [BabyBear],
    width: usize,
    first: BabyBear,
    step: BabyBear,
}

impl Kernel for ScaleRowsKernel<'_> {
    type Output = ();
    #[inline(always)]
    fn run<P: PackedBabyBear>(self) {
        let mut s = self.first;
        for row in self.rows.chunks_exact_mut(self.width) {
            scale_row::<P>(row, s);
            s *= self.step;
        }
    }
}

/// Multiplies row j of the matrix by `first · step^j`.
pub(crate) fn scale_rows_geometric(
    values: &mut [BabyBear],
    width: usize,
    first: BabyBear,
    step: BabyBear,
    simd: Simd,
    threads: usize,
) {
    let height = values.len() / width;
    let rows_per = chunk_len(height, threads_for(values.len(), threads));
    let items: Vec<_> = values.chunks_mut(rows_per * width).enumerate().collect();
    par_for_each(items, |(k, rows)| {
        let first = first * step.exp_u64((k * rows_per) as u64);
        simd.dispatch(ScaleRowsKernel { rows, width, first, step });
    });
}

/// Multiplies every entry by `s`.
pub(crate) fn scale_all(values: &mut [BabyBear], width: usize, s: BabyBear, simd: Simd, threads: usize) {
    scale_rows_geometric(values, width, s, BabyBear::ONE, simd, threads);
}

/// Returns the matrix with its rows in bit-reversed order (out-of-place, so the work splits into
/// independent contiguous ranges of destination rows).
pub(crate) fn bit_reverse_rows(values: &[BabyBear], width: usize, threads: usize) -> Vec<BabyBear> {
    let height = values.len() / width;
    let log_h = height.trailing_zeros();
    if height <= 2 {
        return values.to_vec();
    }
    let mut out = vec![BabyBear::ZERO; values.len()];
    let rows_per = chunk_len(height, threads_for(values.len(), threads));
    let items: Vec<_> = out.chunks_mut(rows_per * width).enumerate().collect();
    par_for_each(items, |(k, dst)| {
        let first = k * rows_per;
        for (r, row) in dst.chunks_exact_mut(width).enumerate() {
            let src = ((first + r).reverse_bits() >> (usize::BITS - log_h)) * width;
            row.copy_from_slice(&values[src..src + width]);
        }
    });
    out
}

/// Swaps rows i and h − i for 0 < i < h/2 (turns a forward DFT into an unscaled inverse one).
pub(crate) fn reverse_rows_except_first(values: &mut [BabyBear], width: usize, threads: usize) {
    let height = values.len() / width;
    if height <= 2 {
        return;
    }
    let half = height / 2;
    // lo = rows 1 .. h/2, hi = rows h/2 + 1 .. h; row 1 + x pairs with row h − 1 − x, so lo's
    // chunks from the front pair with hi's chunks from the back, reversed.
    let (lo, rest) = values[width..].split_at_mut((half - 1) * width);
    let hi = &mut rest[width..];
    let rows_per = chunk_len(half - 1, threads_for(height * width, threads));
    let items: Vec<_> = lo.chunks_mut(rows_per * width).zip(hi.rchunks_mut(rows_per * width)).collect();
    par_for_each(items, |(a, b)| {
        let n = a.len() / width;
        for x in 0..n {
            let y = n - 1 - x;
            a[x * width..(x + 1) * width].swap_with_slice(&mut b[y * width..(y + 1) * width]);
        }
    });
}
