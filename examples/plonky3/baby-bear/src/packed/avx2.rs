//! Eight BabyBear lanes in one AVX2 register.
//!
//! Every lane holds a canonical Montgomery word, exactly as the scalar type does.
//! See the module docs of `packed` for the safety contract: these methods execute AVX2
//! instructions and are only reached through `Simd::dispatch`.

use super::PackedBabyBear;
use crate::BabyBear;
use crate::field::{MU, P};
use core::arch::x86_64::*;
use core::ops::{Add, Mul, Sub};

/// Eight field elements.
#[derive(Copy, Clone, Debug)]
#[repr(transparent)]
pub struct PackedAvx2(pub __m256i);

// SAFETY (for every `unsafe` block below): the intrinsics need AVX2, which `Simd::dispatch`
// checked before any kernel could construct a `PackedAvx2`; loads and stores are unaligned and
// stay inside slices whose length was checked.

#[inline(always)]
fn splat(x: u32) -> __m256i {
    unsafe { _mm256_set1_epi32(x as i32) }
}

/// Moves the odd 32-bit lanes into the even positions (`vmovshdup`), so that `vpmuludq`, which
/// multiplies the even lanes, can reach them.
#[inline(always)]
fn odd_to_even(x: __m256i) -> __m256i {
    unsafe { _mm256_castps_si256(_mm256_movehdup_ps(_mm256_castsi256_ps(x))) }
}

impl PackedAvx2 {
    /// Lane-wise `(a + b) mod p`: the sum is below 2p < 2^32, and `min(s, s − p)` (unsigned)
    /// picks `s − p` exactly when it did not wrap.
    #[inline(always)]
    pub fn add_v(self, rhs: Self) -> Self {
        unsafe {
            let s = _mm256_add_epi32(self.0, rhs.0);
            Self(_mm256_min_epu32(s, _mm256_sub_epi32(s, splat(P))))
        }
    }

    /// Lane-wise `(a − b) mod p`: if the difference wrapped, adding p brings it below p, and the
    /// unsigned minimum picks whichever of `d`, `d + p` is canonical.
    #[inline(always)]
    pub fn sub_v(self, rhs: Self) -> Self {
        unsafe {
            let d = _mm256_sub_epi32(self.0, rhs.0);
            Self(_mm256_min_epu32(d, _mm256_add_epi32(d, splat(P))))
        }
    }

    /// Lane-wise Montgomery product.
    ///
    /// `vpmuludq` multiplies the even 32-bit lanes into 64-bit products, so the even and odd
    /// lanes are handled as two halves: x = a·b, t = x_lo·μ, u = t·p, result = x_hi − u_hi
    /// (+p if negative). The high halves end up in the odd 32-bit lanes of each 64-bit product;
    /// one shuffle and one blend put the eight results back in order.
    #[inline(always)]
    pub fn mul_v(self, rhs: Self) -> Self {
        unsafe {
            let (mu, p) = (splat(MU), splat(P));
            let a_odd = odd_to_even(self.0);
            let b_odd = odd_to_even(rhs.0);
            let x_evn = _mm256_mul_epu32(self.0, rhs.0);
            let x_odd = _mm256_mul_epu32(a_odd, b_odd);
            let t_evn = _mm256_mul_epu32(x_evn, mu);
            let t_odd = _mm256_mul_epu32(x_odd, mu);
            let u_evn = _mm256_mul_epu32(t_evn, p);
            let u_odd = _mm256_mul_epu32(t_odd, p);
            // The low halves of x and u are equal, so only the odd lanes carry information.
            let d_evn = _mm256_sub_epi32(x_evn, u_evn);
            let d_odd = _mm256_sub_epi32(x_odd, u_odd);
            let d = _mm256_blend_epi32::<0b1010_1010>(odd_to_even(d_evn), d_odd);
            Self(_mm256_min_epu32(d, _mm256_add_epi32(d, p)))
        }
    }
}

impl PackedBabyBear for PackedAvx2 {
    const WIDTH: usize = 8;

    #[inline(always)]
    fn broadcast(x: BabyBear) -> Self {
        Self(splat(x.to_monty()))
    }

    #[inline(always)]
    fn load(src: &[BabyBear]) -> Self {
        assert!(src.len() >= 8);
        unsafe { Self(_mm256_loadu_si256(src.as_ptr().cast())) }
    }

    #[inline(always)]
    fn store(self, dst: &mut [BabyBear]) {
        assert!(dst.len() >= 8);
        unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), self.0) }
    }
}

impl Add for PackedAvx2 {
    type Output = Self;
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self.add_v(rhs)
    }
}

impl Sub for PackedAvx2 {
    type Output = Self;
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self.sub_v(rhs)
    }
}

impl Mul for PackedAvx2 {
    type Output = Self;
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        self.mul_v(rhs)
    }
}
