//! The candidate under test, seen through canonical `u64` values so that every comparison is
//! with the reference's own representation.

use baby_bear::{BabyBear, Simd};
use dft::{Radix2Dit, RowMajorMatrix, TwoAdicSubgroupDft};

/// One configured candidate DFT (a SIMD path and a thread count).
pub struct Candidate {
    pub dft: Radix2Dit,
}

fn to_matrix(values: &[u64], width: usize) -> RowMajorMatrix {
    RowMajorMatrix::new(values.iter().map(|&x| BabyBear::new(x as u32)).collect(), width)
}

fn from_matrix(m: &RowMajorMatrix, expected_width: usize, expected_len: usize) -> Result<Vec<u64>, String> {
    if m.width() != expected_width || m.values.len() != expected_len {
        return Err(format!(
            "output shape is {} values of width {}, expected {expected_len} of width {expected_width}",
            m.values.len(),
            m.width()
        ));
    }
    Ok(m.values.iter().map(|x| x.as_canonical_u32() as u64).collect())
}

impl Candidate {
    pub fn new(simd: Simd, threads: usize) -> Result<Self, String> {
        Radix2Dit::new(simd, threads).map(|dft| Candidate { dft }).map_err(|e| e.to_string())
    }

    pub fn dft(&self, v: &[u64], w: usize) -> Result<Vec<u64>, String> {
        from_matrix(&self.dft.dft_batch(to_matrix(v, w)), w, v.len())
    }

    pub fn idft(&self, v: &[u64], w: usize) -> Result<Vec<u64>, String> {
        from_matrix(&self.dft.idft_batch(to_matrix(v, w)), w, v.len())
    }

    pub fn coset_dft(&self, v: &[u64], w: usize, shift: u64) -> Result<Vec<u64>, String> {
        from_matrix(&self.dft.coset_dft_batch(to_matrix(v, w), BabyBear::new(shift as u32)), w, v.len())
    }

    pub fn coset_lde(&self, v: &[u64], w: usize, added_bits: usize, shift: u64) -> Result<Vec<u64>, String> {
        let out = self.dft.coset_lde_batch(to_matrix(v, w), added_bits, BabyBear::new(shift as u32));
        from_matrix(&out, w, v.len() << added_bits)
    }
}
