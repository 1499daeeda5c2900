//! The transforms against direct evaluation, every SIMD path against scalar, thread counts
//! against each other, and round trips.

use crate::{BabyBear, Radix2Dit, RowMajorMatrix, Simd, TwoAdicSubgroupDft};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn matrix(&mut self, height: usize, width: usize) -> RowMajorMatrix {
        let values = (0..height * width).map(|_| BabyBear::from_u64(self.next())).collect();
        RowMajorMatrix::new(values, width)
    }
}

/// out[i][c] = Σ_j in[j][c] · x_i^j, x_i = shift · g^i: direct evaluation of each column
/// (as coefficients) at the points of a coset of the subgroup of order `points`.
fn evaluate_on_coset(coeffs: &RowMajorMatrix, points: usize, shift: BabyBear) -> RowMajorMatrix {
    let g = BabyBear::two_adic_generator(points.trailing_zeros() as usize);
    let w = coeffs.width();
    let mut out = RowMajorMatrix::zeros(points, w);
    for i in 0..points {
        let x = shift * g.exp_u64(i as u64);
        let mut xj = BabyBear::ONE;
        for j in 0..coeffs.height() {
            for c in 0..w {
                out.values[i * w + c] += coeffs.values[j * w + c] * xj;
            }
            xj *= x;
        }
    }
    out
}

/// A DFT that only provides `dft_batch` (by direct evaluation), so its other methods are the
/// trait's textbook defaults.
struct NaiveDft;

impl TwoAdicSubgroupDft for NaiveDft {
    fn dft_batch(&self, mat: RowMajorMatrix) -> RowMajorMatrix {
        evaluate_on_coset(&mat, mat.height(), BabyBear::ONE)
    }
}

fn available_dfts(threads: usize) -> Vec<Radix2Dit> {
    let mut out = Vec::new();
    for simd in Simd::ALL {
        if simd.is_available() {
            out.push(Radix2Dit::new(simd, threads).unwrap());
        } else {
            eprintln!("SKIPPED the {simd} path: this CPU has no {} (not run)", simd.cpu_feature());
        }
    }
    out
}

#[test]
fn dft_matches_direct_evaluation_for_small_heights_and_widths_1_to_33() {
    let mut rng = Rng(1);
    for log_h in 0..=5 {
        let h = 1 << log_h;
        for width in 1..=33 {
            if log_h >= 4 && ![1, 7, 8, 9, 16, 17, 33].contains(&width) {
                continue;
            }
            let m = rng.matrix(h, width);
            let want = evaluate_on_coset(&m, h, BabyBear::ONE);
            for dft in available_dfts(2) {
                assert_eq!(dft.dft_batch(m.clone()), want, "{} h={h} w={width}", dft.simd());
            }
        }
    }
}

#[test]
fn inverse_coset_and_lde_match_direct_evaluation() {
    let mut rng = Rng(2);
    let shift = BabyBear::GENERATOR;
    for log_h in 0..=5 {
        let h = 1 << log_h;
        for width in [1, 3, 8, 17] {
            let m = rng.matrix(h, width);
            for dft in available_dfts(3) {
                let name = dft.simd();
                // idft: evaluating its output on the subgroup gives the input back.
                let coeffs = dft.idft_batch(m.clone());
                assert_eq!(evaluate_on_coset(&coeffs, h, BabyBear::ONE), m, "{name} idft h={h}");
                assert_eq!(dft.coset_dft_batch(m.clone(), shift), evaluate_on_coset(&m, h, shift));
                for added_bits in 0..=2 {
                    let lde = dft.coset_lde_batch(m.clone(), added_bits, shift);
                    let want = evaluate_on_coset(&coeffs, h << added_bits, shift);
                    assert_eq!(lde, want, "{name} coset_lde h={h} w={width} b={added_bits}");
                    let plain = dft.lde_batch(m.clone(), added_bits);
                    assert_eq!(plain, evaluate_on_coset(&coeffs, h << added_bits, BabyBear::ONE));
                }
            }
        }
    }
}

#[test]
fn trait_defaults_agree_with_radix2_overrides() {
    let mut rng = Rng(3);
    let dft = Radix2Dit::new(Simd::Scalar, 1).unwrap();
    for log_h in [0, 1, 3, 5] {
        let m = rng.matrix(1 << log_h, 5);
        let s = BabyBear::new(7);
        assert_eq!(NaiveDft.idft_batch(m.clone()), dft.idft_batch(m.clone()));
        assert_eq!(NaiveDft.coset_dft_batch(m.clone(), s), dft.coset_dft_batch(m.clone(), s));
        assert_eq!(NaiveDft.coset_lde_batch(m.clone(), 1, s), dft.coset_lde_batch(m.clone(), 1, s));
    }
}

#[test]
fn simd_paths_and_thread_counts_give_bit_identical_results() {
    let mut rng = Rng(4);
    let shift = BabyBear::GENERATOR;
    for (log_h, width) in [(10, 1), (11, 17), (12, 8), (9, 33), (13, 16)] {
        let m = rng.matrix(1 << log_h, width);
        let scalar = Radix2Dit::new(Simd::Scalar, 1).unwrap();
        let want_dft = scalar.dft_batch(m.clone());
        let want_lde = scalar.coset_lde_batch(m.clone(), 1, shift);
        for threads in [1, 2, 3] {
            for dft in available_dfts(threads) {
                let tag = format!("{} threads={threads} h=2^{log_h} w={width}", dft.simd());
                assert_eq!(dft.dft_batch(m.clone()), want_dft, "dft {tag}");
                assert_eq!(dft.coset_lde_batch(m.clone(), 1, shift), want_lde, "lde {tag}");
            }
        }
    }
}

#[test]
fn large_round_trips() {
    let mut rng = Rng(5);
    for (log_h, width) in [(14, 16), (16, 3)] {
        let m = rng.matrix(1 << log_h, width);
        for dft in available_dfts(2) {
            let back = dft.idft_batch(dft.dft_batch(m.clone()));
            assert_eq!(back, m, "{} round trip 2^{log_h} x {width}", dft.simd());
            // An LDE restricted to every 2^b-th row of a shift-1 LDE is the input again.
            let lde = dft.lde_batch(m.clone(), 2);
            let every_fourth: Vec<BabyBear> =
                lde.values.chunks(width).step_by(4).flatten().copied().collect();
            assert_eq!(every_fourth, m.values);
        }
    }
}

#[test]
fn height_one_zero_and_constant_inputs() {
    for dft in available_dfts(2) {
        let one_row = RowMajorMatrix::new(vec![BabyBear::new(5), BabyBear::new(9)], 2);
        assert_eq!(dft.dft_batch(one_row.clone()), one_row);
        assert_eq!(dft.idft_batch(one_row.clone()), one_row);
        let zeros = RowMajorMatrix::zeros(1 << 12, 9);
        assert_eq!(dft.dft_batch(zeros.clone()), zeros);
        assert_eq!(dft.coset_lde_batch(zeros, 1, BabyBear::GENERATOR), RowMajorMatrix::zeros(1 << 13, 9));
        // A constant column: DFT is (h·c, 0, …, 0); its LDE is constant.
        let c = BabyBear::new(123_456);
        let h = 1 << 11;
        let constant = RowMajorMatrix::new(vec![c; h * 3], 3);
        let d = dft.dft_batch(constant.clone());
        assert_eq!(d.row(0), &[c * BabyBear::new(h as u32); 3]);
        assert!(d.values[3..].iter().all(|x| x.is_zero()));
        let lde = dft.coset_lde_batch(constant, 2, BabyBear::GENERATOR);
        assert!(lde.values.iter().all(|&x| x == c));
    }
}

#[test]
fn unavailable_simd_and_zero_threads_are_errors() {
    assert!(Radix2Dit::new(Simd::Scalar, 0).is_err());
    for simd in Simd::ALL {
        assert_eq!(Radix2Dit::new(simd, 1).is_ok(), simd.is_available());
    }
}
