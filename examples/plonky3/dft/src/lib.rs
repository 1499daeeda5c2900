//! Two-adic subgroup DFTs over row-major BabyBear matrices (each column one polynomial).
//!
//! * [`RowMajorMatrix`]: the data type every transform takes and returns.
//! * [`TwoAdicSubgroupDft`]: forward DFT (natural order), inverse, coset DFT and coset LDE. Only
//!   `dft_batch` is required; the rest have textbook default implementations on top of it.
//! * [`Radix2Dit`]: the implementation the gate and the benchmark use: radix-2
//!   decimation-in-time, SIMD butterflies across the columns of each row pair, and std threads.
//!
//! The public API is what `gate` and `bench` call; internals may change freely.

mod matrix;
mod parallel;
mod passes;
mod radix2_dit;
mod traits;

pub use baby_bear::{BabyBear, Simd};
pub use matrix::RowMajorMatrix;
pub use radix2_dit::{DftError, Radix2Dit};
pub use traits::TwoAdicSubgroupDft;

#[cfg(test)]
mod tests;
