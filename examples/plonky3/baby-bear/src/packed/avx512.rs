//! Sixteen BabyBear lanes in one AVX-512 register.
//!
//! The same algorithm as the AVX2 path (see `avx2.rs`) on 512-bit registers, with a mask blend
//! instead of an immediate blend. Only AVX-512F instructions are used. See the module docs of
//! `packed` for the safety contract.

use super::PackedBabyBear;
use crate::BabyBear;
use crate::field::{MU, P};
use core::arch::x86_64::*;
use core::ops::{Add, Mul, Sub};

/// Sixteen field elements.
#[derive(Copy, Clone, Debug)]
#[repr(transparent)]
pub struct PackedAvx512(pub __m512i);

// SAFETY (for every `unsafe` block below): the intrinsics need AVX-512F, which `Simd::dispatch`
// checked before any kernel could construct a `PackedAvx512`; loads and stores are unaligned and
// stay inside slices whose length was checked.

#[inline(always)]
fn splat(x: u32) -> __m512i {
    unsafe { _mm512_set1_epi32(x as i32) }
}

/// Moves the odd 32-bit lanes into the even positions (`vmovshdup`).
#[inline(always)]
fn odd_to_even(x: __m512i) -> __m512i {
    unsafe { _mm512_castps_si512(_mm512_movehdup_ps(_mm512_castsi512_ps(x))) }
}

impl PackedAvx512 {
    #[inline(always)]
    pub fn add_v(self, rhs: Self) -> Self {
        unsafe {
            let s = _mm512_add_epi32(self.0, rhs.0);
            Self(_mm512_min_epu32(s, _mm512_sub_epi32(s, splat(P))))
        }
    }

    #[inline(always)]
    pub fn sub_v(self, rhs: Self) -> Self {
        unsafe {
            let d = _mm512_sub_epi32(self.0, rhs.0);
            Self(_mm512_min_epu32(d, _mm512_add_epi32(d, splat(P))))
        }
    }

    /// Lane-wise Montgomery product; see `PackedAvx2::mul_v` for the derivation.
    #[inline(always)]
    pub fn mul_v(self, rhs: Self) -> Self {
        unsafe {
            let (mu, p) = (splat(MU), splat(P));
            let a_odd = odd_to_even(self.0);
            let b_odd = odd_to_even(rhs.0);
            let x_evn = _mm512_mul_epu32(self.0, rhs.0);
            let x_odd = _mm512_mul_epu32(a_odd, b_odd);
            let t_evn = _mm512_mul_epu32(x_evn, mu);
            let t_odd = _mm512_mul_epu32(x_odd, mu);
            let u_evn = _mm512_mul_epu32(t_evn, p);
            let u_odd = _mm512_mul_epu32(t_odd, p);
            let d_evn = _mm512_sub_epi32(x_evn, u_evn);
            let d_odd = _mm512_sub_epi32(x_odd, u_odd);
            let d = _mm512_mask_blend_epi32(0b1010_1010_1010_1010, odd_to_even(d_evn), d_odd);
            Self(_mm512_min_epu32(d, _mm512_add_epi32(d, p)))
        }
    }
}

impl PackedBabyBear for PackedAvx512 {
    const WIDTH: usize = 16;

    #[inline(always)]
    fn broadcast(x: BabyBear) -> Self {
        Self(splat(x.to_monty()))
    }

    #[inline(always)]
    fn load(src: &[BabyBear]) -> Self {
        assert!(src.len() >= 16);
        unsafe { Self(_mm512_loadu_si512(src.as_ptr().cast())) }
    }

    #[inline(always)]
    fn store(self, dst: &mut [BabyBear]) {
        assert!(dst.len() >= 16);
        unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), self.0) }
    }
}

impl Add for PackedAvx512 {
    type Output = Self;
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self.add_v(rhs)
    }
}

impl Sub for PackedAvx512 {
    type Output = Self;
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self.sub_v(rhs)
    }
}

impl Mul for PackedAvx512 {
    type Output = Self;
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        self.mul_v(rhs)
    }
}
