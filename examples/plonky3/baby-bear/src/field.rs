//! Scalar BabyBear arithmetic in Montgomery form.
//!
//! An element `x` is stored as `x · 2^32 mod p`, always canonical in `[0, p)`, so equal values
//! have equal bits (SIMD paths and the scalar path can be compared with `==` on the raw words).
//! Multiplication is a 32×32→64-bit product followed by one Montgomery reduction.

use core::fmt;
use core::iter::{Product, Sum};
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// The field order p = 2^31 − 2^27 + 1 = 15·2^27 + 1.
pub const P: u32 = 0x7800_0001;

/// μ = p^(-1) mod 2^32. With this sign convention the reduction subtracts `t·p` (see
/// [`monty_reduce`]); the packed paths use the same constant.
pub const MU: u32 = 0x8800_0001;

/// R mod p with R = 2^32: the Montgomery form of 1.
const R_MOD_P: u32 = ((1u64 << 32) % P as u64) as u32;

/// R² mod p: multiplying a canonical value by this in the Montgomery domain converts it to
/// Montgomery form.
const R2_MOD_P: u32 = ((1u128 << 64) % P as u128) as u32;

/// Two-adicity of p − 1.
pub const TWO_ADICITY: usize = 27;

/// Montgomery reduction: returns `x · 2^(-32) mod p` in `[0, p)` for any `x < 2^32 · p`.
///
/// t = (x mod 2^32)·μ mod 2^32 makes `u = t·p` agree with `x` in the low 32 bits, so `x − u` is a
/// multiple of 2^32 and its high half lies in (−p, p); one conditional add of p makes it canonical.
#[inline(always)]
pub const fn monty_reduce(x: u64) -> u32 {
    let t = (x as u32).wrapping_mul(MU);
    let u = t as u64 * P as u64;
    let x_hi = (x >> 32) as u32;
    let u_hi = (u >> 32) as u32;
    let r = x_hi.wrapping_sub(u_hi);
    if x_hi < u_hi { r.wrapping_add(P) } else { r }
}

/// An element of the BabyBear field, stored in Montgomery form.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct BabyBear {
    /// `x · 2^32 mod p`, canonical.
    monty: u32,
}

impl BabyBear {
    pub const ZERO: Self = Self { monty: 0 };
    pub const ONE: Self = Self { monty: R_MOD_P };
    pub const TWO: Self = Self::new(2);
    pub const NEG_ONE: Self = Self::new(P - 1);
    /// The multiplicative generator of F_p^*.
    pub const GENERATOR: Self = Self::new(31);
    pub const ORDER: u32 = P;
    pub const TWO_ADICITY: usize = TWO_ADICITY;

    /// The element whose canonical value is `x mod p`.
    #[inline]
    pub const fn new(x: u32) -> Self {
        let x = x % P;
        Self { monty: monty_reduce(x as u64 * R2_MOD_P as u64) }
    }

    /// Alias of [`BabyBear::new`] for callers that already hold a value below p.
    #[inline]
    pub const fn from_canonical_u32(x: u32) -> Self {
        Self::new(x)
    }

    /// Reduces an arbitrary `u64` mod p.
    #[inline]
    pub const fn from_u64(x: u64) -> Self {
        Self::new((x % P as u64) as u32)
    }

    /// The canonical value in `[0, p)`.
    #[inline]
    pub const fn as_canonical_u32(self) -> u32 {
        monty_reduce(self.monty as u64)
    }

    /// The raw Montgomery word (`x · 2^32 mod p`).
    #[inline(always)]
    pub const fn to_monty(self) -> u32 {
        self.monty
    }

    /// Wraps a raw Montgomery word. `m` must be below p.
    #[inline(always)]
    pub const fn from_monty(m: u32) -> Self {
        debug_assert!(m < P);
        Self { monty: m }
    }

    #[inline]
    pub const fn is_zero(self) -> bool {
        self.monty == 0
    }

    #[inline(always)]
    pub const fn add_const(self, rhs: Self) -> Self {
        // Both operands are below p < 2^31, so the sum fits in a u32.
        let s = self.monty + rhs.monty;
        Self { monty: if s >= P { s - P } else { s } }
    }

    #[inline(always)]
    pub const fn sub_const(self, rhs: Self) -> Self {
        let d = self.monty.wrapping_sub(rhs.monty);
        Self { monty: if self.monty < rhs.monty { d.wrapping_add(P) } else { d } }
    }

    #[inline(always)]
    pub const fn mul_const(self, rhs: Self) -> Self {
        Self { monty: monty_reduce(self.monty as u64 * rhs.monty as u64) }
    }

    #[inline]
    pub const fn square(self) -> Self {
        self.mul_const(self)
    }

    #[inline]
    pub const fn double(self) -> Self {
        self.add_const(self)
    }

    /// `self^e` by square-and-multiply.
    pub const fn exp_u64(self, mut e: u64) -> Self {
        let mut base = self;
        let mut acc = Self::ONE;
        while e != 0 {
            if e & 1 == 1 {
                acc = acc.mul_const(base);
            }
            base = base.square();
            e >>= 1;
        }
        acc
    }

    /// `self^(2^k)`.
    pub const fn exp_power_of_2(self, k: usize) -> Self {
        let mut x = self;
        let mut i = 0;
        while i < k {
            x = x.square();
            i += 1;
        }
        x
    }

    /// The multiplicative inverse (Fermat: `x^(p−2)`), or `None` for zero.
    pub const fn try_inverse(self) -> Option<Self> {
        if self.is_zero() { None } else { Some(self.exp_u64(P as u64 - 2)) }
    }

    /// The multiplicative inverse. Panics on zero.
    pub const fn inverse(self) -> Self {
        match self.try_inverse() {
            Some(x) => x,
            None => panic!("BabyBear: inverse of zero"),
        }
    }

    /// The generator of the subgroup of order `2^bits`: `31^((p − 1) / 2^bits)`.
    pub const fn two_adic_generator(bits: usize) -> Self {
        assert!(bits <= TWO_ADICITY, "BabyBear: two-adicity is 27");
        Self::GENERATOR.exp_u64(((P - 1) >> bits) as u64)
    }

    /// `1/2^bits`.
    pub const fn inverse_power_of_two(bits: usize) -> Self {
        Self::TWO.exp_u64(bits as u64).inverse()
    }

    /// `[1, x, x², …, x^(n−1)]`.
    pub fn powers(self, n: usize) -> Vec<Self> {
        let mut out = Vec::with_capacity(n);
        let mut acc = Self::ONE;
        for _ in 0..n {
            out.push(acc);
            acc *= self;
        }
        out
    }
}

impl fmt::Debug for BabyBear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_canonical_u32())
    }
}

impl fmt::Display for BabyBear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_canonical_u32())
    }
}

impl Add for BabyBear {
    type Output = Self;
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self.add_const(rhs)
    }
}

impl Sub for BabyBear {
    type Output = Self;
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self.sub_const(rhs)
    }
}

impl Mul for BabyBear {
    type Output = Self;
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        self.mul_const(rhs)
    }
}

impl Div for BabyBear {
    type Output = Self;
    #[allow(clippy::suspicious_arithmetic_impl)]
    fn div(self, rhs: Self) -> Self {
        self * rhs.inverse()
    }
}

impl Neg for BabyBear {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Self::ZERO - self
    }
}

impl AddAssign for BabyBear {
    #[inline(always)]
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl SubAssign for BabyBear {
    #[inline(always)]
    fn sub_assign(&mut self, rhs: Self) {
        *self = *self - rhs;
    }
}

impl MulAssign for BabyBear {
    #[inline(always)]
    fn mul_assign(&mut self, rhs: Self) {
        *self = *self * rhs;
    }
}

impl Sum for BabyBear {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + b)
    }
}

impl Product for BabyBear {
    fn product<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ONE, |a, b| a * b)
    }
}

/// Inverts every element with one field inversion and 3(n−1) multiplications (Montgomery's trick).
/// Panics if any element is zero.
pub fn batch_inverse(xs: &[BabyBear]) -> Vec<BabyBear> {
    let mut prefix = Vec::with_capacity(xs.len());
    let mut acc = BabyBear::ONE;
    for &x in xs {
        prefix.push(acc);
        acc *= x;
    }
    let mut inv = acc.inverse();
    let mut out = vec![BabyBear::ZERO; xs.len()];
    for i in (0..xs.len()).rev() {
        out[i] = inv * prefix[i];
        inv *= xs[i];
    }
    out
}
