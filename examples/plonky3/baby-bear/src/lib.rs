//! The BabyBear prime field, p = 2^31 − 2^27 + 1, for the poi NTT example target.
//!
//! * [`BabyBear`]: one element in canonical Montgomery form (scalar arithmetic, inverse, powers,
//!   two-adic generators).
//! * [`packed`]: the same arithmetic on 8 (AVX2) or 16 (AVX-512) lanes, and [`Simd`], which
//!   picks the path at run time from the CPU's features and runs generic kernels on it.

mod field;
pub mod packed;

pub use field::{BabyBear, MU, P, TWO_ADICITY, batch_inverse, monty_reduce};
pub use packed::{Kernel, PackedBabyBear, Simd};

#[cfg(test)]
mod tests;
