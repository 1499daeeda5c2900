//! Packed BabyBear: several field elements in one SIMD register, and run-time ISA dispatch.
//!
//! Three implementations share one trait, [`PackedBabyBear`]: the scalar fallback (one lane: the
//! plain field element), AVX2 (8 lanes) and AVX-512 (16 lanes). All three return bit-identical
//! results because every lane keeps the canonical Montgomery word.
//!
//! # Why kernels go through [`Kernel`]
//!
//! Rust compiles a function with the target features it is declared with; an AVX2 intrinsic
//! inlined into a function compiled without AVX2 is not allowed, so a generic kernel called from
//! ordinary code would turn every packed operation into an out-of-line call. Instead a kernel is a
//! value implementing [`Kernel`], and [`Simd::dispatch`] calls its `run::<P>()` from inside a
//! function compiled with the ISA's features (`#[target_feature(enable = "avx2")]`). As long as
//! `run` and everything it calls are `#[inline(always)]`, the whole kernel is compiled for that ISA.
//!
//! # Safety contract
//!
//! The AVX2 and AVX-512 packed types execute those instructions in every method. They must only
//! be used inside a kernel run by [`Simd::dispatch`], which checks the CPU's features first.

use crate::BabyBear;
use core::fmt;
use core::ops::{Add, Mul, Sub};

mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;

#[cfg(target_arch = "x86_64")]
pub use avx2::PackedAvx2;
#[cfg(target_arch = "x86_64")]
pub use avx512::PackedAvx512;

/// `WIDTH` BabyBear elements processed together.
pub trait PackedBabyBear:
    Copy + Send + Sync + 'static + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    /// Number of lanes.
    const WIDTH: usize;

    /// Every lane set to `x`.
    fn broadcast(x: BabyBear) -> Self;

    /// The first `WIDTH` elements of `src` (panics if `src` is shorter).
    fn load(src: &[BabyBear]) -> Self;

    /// Writes the lanes to the first `WIDTH` elements of `dst` (panics if `dst` is shorter).
    fn store(self, dst: &mut [BabyBear]);
}

/// A computation generic over the packed type, run by [`Simd::dispatch`] with the ISA's features
/// enabled. Implementations should mark `run` `#[inline(always)]` (see the module docs).
pub trait Kernel {
    type Output;
    fn run<P: PackedBabyBear>(self) -> Self::Output;
}

/// The instruction-set path a computation runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Simd {
    Scalar,
    Avx2,
    Avx512,
}

impl Simd {
    pub const ALL: [Simd; 3] = [Simd::Scalar, Simd::Avx2, Simd::Avx512];

    /// The widest path this CPU supports.
    pub fn detect() -> Simd {
        if Simd::Avx512.is_available() {
            Simd::Avx512
        } else if Simd::Avx2.is_available() {
            Simd::Avx2
        } else {
            Simd::Scalar
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Simd::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The CPU feature the path needs, as `/proc/cpuinfo` names it.
    pub fn cpu_feature(self) -> &'static str {
        match self {
            Simd::Scalar => "none",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512f",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Simd::Scalar => "scalar",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }

    /// Parses `scalar`, `avx2`, `avx512`; `auto` gives [`Simd::detect`].
    pub fn parse(s: &str) -> Option<Simd> {
        match s {
            "auto" => Some(Simd::detect()),
            "scalar" => Some(Simd::Scalar),
            "avx2" => Some(Simd::Avx2),
            "avx512" => Some(Simd::Avx512),
            _ => None,
        }
    }

    /// Lanes per packed value on this path.
    pub fn width(self) -> usize {
        match self {
            Simd::Scalar => 1,
            Simd::Avx2 => 8,
            Simd::Avx512 => 16,
        }
    }

    /// Runs `kernel` with this path's packed type, compiled with its target features.
    ///
    /// Panics if the CPU lacks the path's features (callers check [`Simd::is_available`] once,
    /// up front; this check keeps the packed types sound regardless).
    #[inline]
    pub fn dispatch<K: Kernel>(self, kernel: K) -> K::Output {
        assert!(self.is_available(), "SIMD path {} is not supported by this CPU", self.name());
        match self {
            Simd::Scalar => kernel.run::<BabyBear>(),
            // SAFETY: the assertion above checked the CPU features the entry points enable.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { run_avx2(kernel) },
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { run_avx512(kernel) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!(),
        }
    }
}

impl fmt::Display for Simd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<PackedAvx2>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_avx512<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<PackedAvx512>()
}
