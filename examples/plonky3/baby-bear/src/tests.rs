//! Known answers, agreement with plain `u64` arithmetic mod p, and every SIMD path against the
//! scalar path.

use super::*;

const PU: u64 = P as u64;

/// A small deterministic generator (SplitMix64) so the tests need no crates.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Mostly uniform values, with the edge cases 0, 1, 2, p−1, p−2 and 2^27 mixed in.
    fn canonical(&mut self) -> u32 {
        const EDGES: [u32; 6] = [0, 1, 2, P - 1, P - 2, 1 << 27];
        let r = self.next_u64();
        if r.is_multiple_of(8) { EDGES[(r >> 8) as usize % EDGES.len()] } else { (r >> 32) as u32 % P }
    }

    fn element(&mut self) -> BabyBear {
        BabyBear::new(self.canonical())
    }
}

#[test]
fn known_answers_from_the_facts_note() {
    assert_eq!(BabyBear::ONE.to_monty(), 0x0fff_fffe);
    let x = BabyBear::new(0x3416_7c58) * BabyBear::new(0x61f3_207b);
    assert_eq!(x.as_canonical_u32(), 0x1b5c_8046);
    assert_eq!(BabyBear::two_adic_generator(27).as_canonical_u32(), 0x1a42_7a41);
    assert_eq!(BabyBear::two_adic_generator(1), BabyBear::NEG_ONE);
    assert_eq!(BabyBear::two_adic_generator(0), BabyBear::ONE);
    assert_eq!(P, (1u32 << 31) - (1 << 27) + 1);
}

#[test]
fn montgomery_constants_are_consistent() {
    assert_eq!(P.wrapping_mul(MU), 1, "mu is p^-1 mod 2^32");
    assert_eq!(BabyBear::ONE.as_canonical_u32(), 1);
    assert_eq!(BabyBear::GENERATOR.as_canonical_u32(), 31);
    for x in [0, 1, 2, 31, P - 1, 123_456_789] {
        assert_eq!(BabyBear::new(x).as_canonical_u32(), x);
    }
    assert_eq!(BabyBear::new(P), BabyBear::ZERO);
    assert_eq!(BabyBear::from_u64(u64::MAX).as_canonical_u32(), (u64::MAX % PU) as u32);
}

#[test]
fn arithmetic_agrees_with_u64_mod_p() {
    let mut rng = Rng(1);
    for _ in 0..100_000 {
        let (a, b) = (rng.canonical(), rng.canonical());
        let (x, y) = (BabyBear::new(a), BabyBear::new(b));
        let (a, b) = (a as u64, b as u64);
        assert_eq!((x + y).as_canonical_u32() as u64, (a + b) % PU);
        assert_eq!((x - y).as_canonical_u32() as u64, (a + PU - b) % PU);
        assert_eq!((x * y).as_canonical_u32() as u64, a * b % PU);
        assert_eq!((-x).as_canonical_u32() as u64, (PU - a) % PU);
        // Stored words stay canonical.
        assert!((x * y).to_monty() < P && (x + y).to_monty() < P && (x - y).to_monty() < P);
    }
}

#[test]
fn inverse_exp_and_generators() {
    let mut rng = Rng(2);
    for _ in 0..200 {
        let x = rng.element();
        match x.try_inverse() {
            None => assert!(x.is_zero()),
            Some(inv) => assert_eq!(x * inv, BabyBear::ONE),
        }
        assert_eq!(x.exp_u64(5), x * x * x * x * x);
        assert_eq!(x.exp_power_of_2(3), x.exp_u64(8));
    }
    assert_eq!(BabyBear::ZERO.try_inverse(), None);
    // The generator of order 2^k has exactly that order, and squares to the one of order 2^(k−1).
    for k in 1..=TWO_ADICITY {
        let g = BabyBear::two_adic_generator(k);
        assert_eq!(g.exp_power_of_2(k), BabyBear::ONE);
        assert_ne!(g.exp_power_of_2(k - 1), BabyBear::ONE);
        assert_eq!(g.square(), BabyBear::two_adic_generator(k - 1));
    }
    // 31 generates the whole multiplicative group: its order is p − 1 = 2^27 · 3 · 5.
    let g = BabyBear::GENERATOR;
    for q in [2u64, 3, 5] {
        assert_ne!(g.exp_u64((PU - 1) / q), BabyBear::ONE);
    }
    assert_eq!(BabyBear::inverse_power_of_two(5) * BabyBear::new(32), BabyBear::ONE);
}

#[test]
fn batch_inverse_matches_single_inverses() {
    let mut rng = Rng(3);
    let xs: Vec<BabyBear> = (0..257).map(|_| BabyBear::new(rng.canonical() % (P - 1) + 1)).collect();
    let inv = batch_inverse(&xs);
    for (x, i) in xs.iter().zip(&inv) {
        assert_eq!(*i, x.inverse());
    }
    assert!(batch_inverse(&[]).is_empty());
}

/// Element-wise `a + b`, `a − b`, `a · b` and `a·b + a − b` over slices of any length: packed
/// chunks, then the remainder one element at a time (the same shape the DFT kernels use).
struct ElementwiseKernel<'a> {
    a: &'a [BabyBear],
    b: &'a [BabyBear],
}

impl Kernel for ElementwiseKernel<'_> {
    type Output = [Vec<BabyBear>; 4];

    #[inline(always)]
    fn run<PB: PackedBabyBear>(self) -> Self::Output {
        let n = self.a.len();
        let mut out: [Vec<BabyBear>; 4] = std::array::from_fn(|_| vec![BabyBear::ZERO; n]);
        let full = n / PB::WIDTH * PB::WIDTH;
        let mut i = 0;
        while i < full {
            let (x, y) = (PB::load(&self.a[i..]), PB::load(&self.b[i..]));
            (x + y).store(&mut out[0][i..]);
            (x - y).store(&mut out[1][i..]);
            (x * y).store(&mut out[2][i..]);
            (x * y + x - y).store(&mut out[3][i..]);
            i += PB::WIDTH;
        }
        for (j, (&x, &y)) in self.a.iter().zip(self.b).enumerate().skip(full) {
            for (o, v) in out.iter_mut().zip([x + y, x - y, x * y, x * y + x - y]) {
                o[j] = v;
            }
        }
        out
    }
}

fn check_path_against_scalar(simd: Simd) {
    let mut rng = Rng(4 + simd.width() as u64);
    for width in 1..=33 {
        for _ in 0..50 {
            let a: Vec<BabyBear> = (0..width).map(|_| rng.element()).collect();
            let b: Vec<BabyBear> = (0..width).map(|_| rng.element()).collect();
            let want = Simd::Scalar.dispatch(ElementwiseKernel { a: &a, b: &b });
            let got = simd.dispatch(ElementwiseKernel { a: &a, b: &b });
            assert_eq!(got, want, "{simd} differs from scalar at width {width}");
        }
    }
    // Broadcast fills every lane.
    struct Bcast(BabyBear);
    impl Kernel for Bcast {
        type Output = Vec<BabyBear>;
        #[inline(always)]
        fn run<PB: PackedBabyBear>(self) -> Vec<BabyBear> {
            let mut v = vec![BabyBear::ZERO; PB::WIDTH];
            PB::broadcast(self.0).store(&mut v);
            v
        }
    }
    let x = BabyBear::new(0x1234_5678);
    assert_eq!(simd.dispatch(Bcast(x)), vec![x; simd.width()]);
}

#[test]
fn scalar_path_matches_field_ops() {
    check_path_against_scalar(Simd::Scalar);
}

#[test]
fn avx2_path_matches_scalar() {
    if !Simd::Avx2.is_available() {
        eprintln!("SKIPPED avx2_path_matches_scalar: this CPU has no avx2 (the test did not run)");
        return;
    }
    check_path_against_scalar(Simd::Avx2);
}

#[test]
fn avx512_path_matches_scalar() {
    if !Simd::Avx512.is_available() {
        eprintln!(
            "SKIPPED avx512_path_matches_scalar: this CPU has no avx512f (the test did not run)"
        );
        return;
    }
    check_path_against_scalar(Simd::Avx512);
}

#[test]
fn simd_parsing_and_detection() {
    assert_eq!(Simd::parse("scalar"), Some(Simd::Scalar));
    assert_eq!(Simd::parse("avx512"), Some(Simd::Avx512));
    assert_eq!(Simd::parse("sse"), None);
    assert!(Simd::detect().is_available());
    assert!(Simd::parse("auto").unwrap().is_available());
}
