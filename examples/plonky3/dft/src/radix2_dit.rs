//! Radix-2 decimation-in-time DFT over the rows of a matrix.
//!
//! `dft_batch` permutes the rows into bit-reversed order, then runs log2(h) butterfly layers.
//! Layer s combines rows i and i + 2^s inside blocks of 2^(s+1) rows:
//! (a, b) ↦ (a + ω^j·b, a − ω^j·b), with ω of order 2^(s+1) and j = i mod 2^s. One table of
//! g^0 … g^(h/2 − 1) (g of order h) serves every layer: ω^j = g^(j · h / 2^(s+1)).
//!
//! Every butterfly acts on whole rows: the columns are independent polynomials, so a row pair is
//! processed as packed vectors across the columns (SIMD lanes = columns). Each layer is split
//! over threads either by whole blocks (early layers: many small blocks) or, when there are
//! fewer blocks than threads, by ranges of row pairs inside each block.

use crate::matrix::RowMajorMatrix;
use crate::parallel::{chunk_len, par_for_each, threads_for};
use crate::passes::{bit_reverse_rows, reverse_rows_except_first, scale_all, scale_rows_geometric};
use crate::traits::TwoAdicSubgroupDft;
use baby_bear::{BabyBear, Kernel, PackedBabyBear, Simd};
use std::fmt;

/// Why a [`Radix2Dit`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DftError {
    /// The CPU lacks the features of the requested SIMD path.
    SimdUnavailable(Simd),
    /// Zero threads were requested.
    ZeroThreads,
}

impl fmt::Display for DftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DftError::SimdUnavailable(s) => {
                write!(f, "this CPU lacks {} (needed by the {} path)", s.cpu_feature(), s.name())
            }
            DftError::ZeroThreads => write!(f, "at least one thread is needed"),
        }
    }
}

impl std::error::Error for DftError {}

/// The radix-2 DIT implementation of [`TwoAdicSubgroupDft`].
#[derive(Clone, Debug)]
pub struct Radix2Dit {
    simd: Simd,
    threads: usize,
}

impl Radix2Dit {
    /// A DFT running on `simd` with up to `threads` threads.
    pub fn new(simd: Simd, threads: usize) -> Result<Self, DftError> {
        if !simd.is_available() {
            return Err(DftError::SimdUnavailable(simd));
        }
        if threads == 0 {
            return Err(DftError::ZeroThreads);
        }
        Ok(Self { simd, threads })
    }

    /// The widest SIMD path of this CPU, one thread per available core.
    pub fn auto() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { simd: Simd::detect(), threads }
    }

    pub fn simd(&self) -> Simd {
        self.simd
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// g^0, g^1, …, g^(h/2 − 1) for g of order h.
fn twiddle_table(log_h: usize) -> Vec<BabyBear> {
    if log_h == 0 {
        return Vec::new();
    }
    BabyBear::two_adic_generator(log_h).powers(1 << (log_h - 1))
}

/// One DIT butterfly across a row pair: (a, b) ↦ (a + t·b, a − t·b), column by column.
#[inline(always)]
fn butterfly_rows<P: PackedBabyBear>(a: &mut [BabyBear], b: &mut [BabyBear], t: BabyBear) {
    let tv = P::broadcast(t);
    let full = a.len() / P::WIDTH * P::WIDTH;
    let (a_packed, a_rest) = a.split_at_mut(full);
    let (b_packed, b_rest) = b.split_at_mut(full);
    for (ac, bc) in a_packed.chunks_exact_mut(P::WIDTH).zip(b_packed.chunks_exact_mut(P::WIDTH)) {
        let x = P::load(ac);
        let y = P::load(bc) * tv;
        (x + y).store(ac);
        (x - y).store(bc);
    }
    for (x, y) in a_rest.iter_mut().zip(b_rest.iter_mut()) {
        let ty = *y * t;
        (*x, *y) = (*x + ty, *x - ty);
    }
}

/// Row pairs (lo[r], hi[r]) with twiddles `twiddles[(j0 + r) · stride]`.
#[inline(always)]
fn dit_pairs<P: PackedBabyBear>(
    lo: &mut [BabyBear],
    hi: &mut [BabyBear],
    width: usize,
    twiddles: &[BabyBear],
    j0: usize,
    stride: usize,
) {
    for (r, (a, b)) in lo.chunks_exact_mut(width).zip(hi.chunks_exact_mut(width)).enumerate() {
        butterfly_rows::<P>(a, b, twiddles[(j0 + r) * stride]);
    }
}

/// A run of whole blocks of one layer.
struct DitBlocks<'a> {
    blocks: &'a mut [BabyBear],
    width: usize,
    half: usize,
    twiddles: &'a [BabyBear],
    stride: usize,
}

impl Kernel for DitBlocks<'_> {
    type Output = ();
    #[inline(always)]
    fn run<P: PackedBabyBear>(self) {
        for block in self.blocks.chunks_exact_mut(2 * self.half * self.width) {
            let (lo, hi) = block.split_at_mut(self.half * self.width);
            dit_pairs::<P>(lo, hi, self.width, self.twiddles, 0, self.stride);
        }
    }
}

/// A range of row pairs inside one block.
struct DitPairs<'a> {
    lo: &'a mut [BabyBear],
    hi: &'a mut [BabyBear],
    width: usize,
    twiddles: &'a [BabyBear],
    j0: usize,
    stride: usize,
}

impl Kernel for DitPairs<'_> {
    type Output = ();
    #[inline(always)]
    fn run<P: PackedBabyBear>(self) {
        dit_pairs::<P>(self.lo, self.hi, self.width, self.twiddles, self.j0, self.stride);
    }
}

impl Radix2Dit {
    /// Butterfly layer `layer` (half-block size 2^layer) over a bit-reversed matrix.
    fn dit_layer(&self, values: &mut [BabyBear], width: usize, layer: usize, twiddles: &[BabyBear]) {
        let height = values.len() / width;
        let half = 1 << layer;
        let blocks = height / (2 * half);
        let stride = (height / 2) >> layer;
        let threads = threads_for(values.len(), self.threads);
        let simd = self.simd;
        if blocks >= threads {
            let blocks_per = chunk_len(blocks, threads);
            let items: Vec<_> = values.chunks_mut(blocks_per * 2 * half * width).collect();
            par_for_each(items, |blocks| {
                simd.dispatch(DitBlocks { blocks, width, half, twiddles, stride });
            });
        } else {
            let pairs_per = chunk_len(half, threads);
            for block in values.chunks_mut(2 * half * width) {
                let (lo, hi) = block.split_at_mut(half * width);
                let items: Vec<_> = lo
                    .chunks_mut(pairs_per * width)
                    .zip(hi.chunks_mut(pairs_per * width))
                    .enumerate()
                    .collect();
                par_for_each(items, |(k, (lo, hi))| {
                    let j0 = k * pairs_per;
                    simd.dispatch(DitPairs { lo, hi, width, twiddles, j0, stride });
                });
            }
        }
    }
}

impl TwoAdicSubgroupDft for Radix2Dit {
    fn dft_batch(&self, mat: RowMajorMatrix) -> RowMajorMatrix {
        let (height, width) = (mat.height(), mat.width());
        assert!(height.is_power_of_two(), "DFT height {height} is not a power of two");
        if height == 1 {
            return mat;
        }
        let log_h = height.trailing_zeros() as usize;
        let twiddles = twiddle_table(log_h);
        let mut values = bit_reverse_rows(&mat.values, width, self.threads);
        drop(mat);
        for layer in 0..log_h {
            self.dit_layer(&mut values, width, layer, &twiddles);
        }
        RowMajorMatrix::new(values, width)
    }

    fn idft_batch(&self, mat: RowMajorMatrix) -> RowMajorMatrix {
        let height = mat.height();
        let width = mat.width();
        let mut out = self.dft_batch(mat);
        let h_inv = BabyBear::from_u64(height as u64).inverse();
        scale_all(&mut out.values, width, h_inv, self.simd, self.threads);
        reverse_rows_except_first(&mut out.values, width, self.threads);
        out
    }

    fn coset_dft_batch(&self, mut mat: RowMajorMatrix, shift: BabyBear) -> RowMajorMatrix {
        let width = mat.width();
        scale_rows_geometric(&mut mat.values, width, BabyBear::ONE, shift, self.simd, self.threads);
        self.dft_batch(mat)
    }

    fn coset_lde_batch(&self, mat: RowMajorMatrix, added_bits: usize, shift: BabyBear) -> RowMajorMatrix {
        let height = mat.height();
        let mut coeffs = self.idft_batch(mat);
        coeffs.pad_to_height(height << added_bits);
        self.coset_dft_batch(coeffs, shift)
    }
}
