//! The randomised checks of the candidate against the reference.
//!
//! Every check is named (`dft`, `idft`, `coset_dft`, `coset_lde`, `round_trip`, …) and tagged
//! with the size and width it ran at, so a failure says exactly what broke. Inputs come from the
//! seed; thread counts rotate through 1, 2 and 3 (fixed, not the machine's core count, so the
//! gate's verdict does not depend on the machine).

use crate::candidate::Candidate;
use baby_bear::Simd;
use reference::harness::{Rng, Seed};
use reference::{P, mul};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A failed check: what, where, and why.
#[derive(Debug)]
pub struct Failure {
    pub check: String,
    pub log_size: usize,
    pub width: usize,
    pub detail: String,
}

/// Runs checks in order and stops at the first failure.
pub struct Gate {
    pub seed: Seed,
    pub simd: Simd,
    pub max_log_size: usize,
    pub checks: usize,
}

/// The shift used for coset DFTs and LDEs besides random ones: Plonky3's (the generator).
pub const SHIFT: u64 = reference::GENERATOR;

/// From this height on, matrices compare a few columns with the reference in full and the
/// rest through a random linear check (the reference costs O(h log h) per column).
const FULL_REFERENCE_MAX_LOG: usize = 14;

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl Gate {
    /// Runs one named check; a panic inside counts as a failure.
    pub fn check(
        &mut self,
        name: &str,
        log_size: usize,
        width: usize,
        f: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), Failure> {
        let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(p))));
        self.checks += 1;
        outcome.map_err(|detail| Failure { check: name.to_string(), log_size, width, detail })
    }

    fn rng(&self, label: &str, index: u64) -> Rng {
        self.seed.rng(label, index)
    }

    fn candidate(&self, threads: usize) -> Candidate {
        Candidate::new(self.simd, threads).expect("SIMD availability was checked at start-up")
    }
}

/// Random canonical values with edge cases (0, 1, p − 1) mixed in.
pub fn random_matrix(rng: &mut Rng, height: usize, width: usize) -> Vec<u64> {
    (0..height * width)
        .map(|_| match rng.below(16) {
            0 => [0, 1, P - 1][rng.below(3) as usize],
            _ => rng.field(),
        })
        .collect()
}

/// Compares two matrices; reports the first differing entry.
pub fn compare(got: &[u64], want: &[u64], width: usize) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("output has {} values, expected {}", got.len(), want.len()));
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => {
            let wrong = got.iter().zip(want).filter(|(a, b)| a != b).count();
            Err(format!(
                "row {} column {}: got {}, reference {} ({wrong} of {} entries wrong)",
                i / width,
                i % width,
                got[i],
                want[i],
                got.len()
            ))
        }
    }
}

/// The transforms, described so the reference can compute them and their transposes.
#[derive(Copy, Clone)]
pub enum Op {
    Dft,
    Idft,
    CosetDft(u64),
    CosetLde { added_bits: usize, shift: u64 },
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Dft => "dft",
            Op::Idft => "idft",
            Op::CosetDft(_) => "coset_dft",
            Op::CosetLde { .. } => "coset_lde",
        }
    }

    pub fn output_len(self, input_len: usize) -> usize {
        match self {
            Op::CosetLde { added_bits, .. } => input_len << added_bits,
            _ => input_len,
        }
    }

    pub fn run_candidate(self, c: &Candidate, v: &[u64], w: usize) -> Result<Vec<u64>, String> {
        match self {
            Op::Dft => c.dft(v, w),
            Op::Idft => c.idft(v, w),
            Op::CosetDft(s) => c.coset_dft(v, w, s),
            Op::CosetLde { added_bits, shift } => c.coset_lde(v, w, added_bits, shift),
        }
    }

    pub fn run_reference(self, v: &[u64], w: usize) -> Vec<u64> {
        match self {
            Op::Dft => reference::dft(v, w),
            Op::Idft => reference::idft(v, w),
            Op::CosetDft(s) => reference::coset_dft(v, w, s),
            Op::CosetLde { added_bits, shift } => reference::coset_lde(v, w, added_bits, shift),
        }
    }

    /// M^T r for the op's matrix M (out = M · in, per column), by the reference: every DFT
    /// matrix is symmetric, so the transposes are the same transforms in the other order.
    fn transpose_apply(self, r: &[u64], input_height: usize) -> Vec<u64> {
        match self {
            Op::Dft => reference::dft(r, 1),
            Op::Idft => reference::idft(r, 1),
            Op::CosetDft(s) => {
                let mut v = reference::dft(r, 1);
                reference::scale_rows_by_powers(&mut v, 1, s);
                v
            }
            Op::CosetLde { shift, .. } => {
                let mut v = reference::dft(r, 1);
                v.truncate(input_height);
                reference::scale_rows_by_powers(&mut v, 1, shift);
                reference::idft(&v, 1)
            }
        }
    }
}

/// Checks `out == M · input` for every entry at once, except with probability about 1/p:
/// Σ_i r_i (out_i · α) must equal Σ_j (M^T r)_j (in_j · α) for random r, α.
pub fn linear_check(op: Op, input: &[u64], out: &[u64], width: usize, rng: &mut Rng) -> Result<(), String> {
    let alpha: Vec<u64> = (0..width).map(|_| rng.field()).collect();
    let combine = |row: &[u64]| {
        (row.iter().zip(&alpha).fold(0u128, |a, (&x, &y)| a + (x * y) as u128) % P as u128) as u64
    };
    let n = out.len() / width;
    let r: Vec<u64> = (0..n).map(|_| rng.field()).collect();
    let lhs = out.chunks_exact(width).zip(&r).fold(0u64, |a, (row, &ri)| (a + mul(combine(row), ri)) % P);
    let u = op.transpose_apply(&r, input.len() / width);
    let rhs = input.chunks_exact(width).zip(&u).fold(0u64, |a, (row, &uj)| (a + mul(combine(row), uj)) % P);
    if lhs == rhs {
        Ok(())
    } else {
        Err("random linear check failed: some entry of the output is wrong".to_string())
    }
}

/// The columns `cols` of a row-major matrix, as a matrix of their own.
fn columns(v: &[u64], width: usize, cols: &[usize]) -> Vec<u64> {
    v.chunks_exact(width).flat_map(|row| cols.iter().map(move |&c| row[c])).collect()
}

/// Candidate vs reference for one op: in full for small heights; for large ones, a few columns
/// (one of them the last, which the packed paths handle as a leftover when the width is not a
/// multiple of the lanes) in full plus the linear check over all entries.
pub fn compare_op(op: Op, c: &Candidate, input: &[u64], width: usize, rng: &mut Rng) -> Result<(), String> {
    let got = op.run_candidate(c, input, width)?;
    if got.len() != op.output_len(input.len()) {
        return Err(format!("output has {} values, expected {}", got.len(), op.output_len(input.len())));
    }
    let log_h = (input.len() / width).trailing_zeros() as usize;
    if log_h <= FULL_REFERENCE_MAX_LOG {
        return compare(&got, &op.run_reference(input, width), width);
    }
    let mut cols = vec![rng.below(width as u64) as usize, width - 1];
    cols.dedup();
    let want = op.run_reference(&columns(input, width, &cols), cols.len());
    compare(&columns(&got, width, &cols), &want, cols.len())
        .map_err(|e| format!("{e} (checked columns {cols:?})"))?;
    linear_check(op, input, &got, width, rng)
}

/// Widths tried at each height: many at small heights (naive reference), the interesting ones
/// (1 lane, one vector, one vector plus a leftover, odd) at large heights.
fn widths_for(log_h: usize) -> &'static [usize] {
    match log_h {
        0..=4 => &[1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33],
        5..=9 => &[1, 8, 17, 33],
        10..=14 => &[3, 16, 17],
        _ => &[5, 16],
    }
}

impl Gate {
    /// BabyBear arithmetic of the candidate against the reference.
    pub fn field_checks(&mut self) -> Result<(), Failure> {
        let mut rng = self.rng("field", 0);
        self.check("field", 0, 1, || {
            use baby_bear::BabyBear as F;
            let known = (F::new(0x3416_7c58) * F::new(0x61f3_207b)).as_canonical_u32();
            if known != 0x1b5c_8046 {
                return Err(format!("0x34167c58 * 0x61f3207b = {known:#x}, expected 0x1b5c8046"));
            }
            if F::two_adic_generator(27).as_canonical_u32() != 0x1a42_7a41 {
                return Err("generator of order 2^27 is not 0x1a427a41".into());
            }
            for _ in 0..20_000 {
                let (a, b) = (random_matrix(&mut rng, 1, 1)[0], rng.field());
                let (x, y) = (F::new(a as u32), F::new(b as u32));
                let got = [(x + y), (x - y), (x * y)].map(|z| z.as_canonical_u32() as u64);
                let want = [reference::add(a, b), reference::sub(a, b), mul(a, b)];
                if got != want {
                    return Err(format!("a={a} b={b}: (+,−,·) gave {got:?}, reference {want:?}"));
                }
            }
            for k in 0..=27 {
                let g = F::two_adic_generator(k).as_canonical_u32() as u64;
                if g != reference::two_adic_generator(k) {
                    return Err(format!("two-adic generator of order 2^{k} is {g}"));
                }
            }
            Ok(())
        })
    }

    /// dft, idft, coset_dft and coset_lde against the reference at every height 2^0 … 2^max.
    pub fn transform_checks(&mut self) -> Result<(), Failure> {
        let mut index = 0u64;
        for log_h in 0..=self.max_log_size {
            for &width in widths_for(log_h) {
                index += 1;
                let mut rng = self.rng("transforms", index);
                let input = random_matrix(&mut rng, 1 << log_h, width);
                let c = self.candidate(1 + (index as usize % 3));
                let random_shift = 1 + rng.below(P - 1);
                let added_bits = 1 + (index as usize % 2);
                let mut ops = vec![
                    Op::Dft,
                    Op::Idft,
                    Op::CosetDft(random_shift),
                    Op::CosetLde { added_bits, shift: SHIFT },
                ];
                if log_h <= 8 {
                    ops.push(Op::CosetLde { added_bits: 0, shift: random_shift });
                    ops.push(Op::CosetLde { added_bits: 3, shift: 1 });
                }
                for op in ops {
                    self.check(op.name(), log_h, width, || compare_op(op, &c, &input, width, &mut rng))?;
                }
            }
        }
        Ok(())
    }

    /// Round trips, linearity, zero and constant inputs, repeated calls, thread counts.
    pub fn property_checks(&mut self) -> Result<(), Failure> {
        let max = self.max_log_size;
        let clamp = |l: usize| l.min(max);

        for (k, (log_h, width)) in [(clamp(10), 17), (clamp(16), 16), (max, 8)].into_iter().enumerate() {
            let mut rng = self.rng("round_trip", k as u64);
            let input = random_matrix(&mut rng, 1 << log_h, width);
            let c = self.candidate(2);
            self.check("round_trip", log_h, width, || {
                let back = c.idft(&c.dft(&input, width)?, width)?;
                compare(&back, &input, width).map_err(|e| format!("idft(dft(x)) != x: {e}"))?;
                // The plain LDE keeps the original points at every 2^b-th row.
                let lde = c.coset_lde(&input, width, 2, 1)?;
                let every_fourth: Vec<u64> = lde.chunks(width).step_by(4).flatten().copied().collect();
                compare(&every_fourth, &input, width).map_err(|e| format!("LDE(shift 1) misses the input rows: {e}"))
            })?;
        }

        for (k, (log_h, width)) in [(clamp(12), 9), (clamp(17), 16)].into_iter().enumerate() {
            let mut rng = self.rng("linearity", k as u64);
            let (x, y) = (random_matrix(&mut rng, 1 << log_h, width), random_matrix(&mut rng, 1 << log_h, width));
            let a = rng.field();
            let c = self.candidate(3);
            self.check("linearity", log_h, width, || {
                let ax_y: Vec<u64> = x.iter().zip(&y).map(|(&x, &y)| (mul(a, x) + y) % P).collect();
                let lhs = c.coset_lde(&ax_y, width, 1, SHIFT)?;
                let (fx, fy) = (c.coset_lde(&x, width, 1, SHIFT)?, c.coset_lde(&y, width, 1, SHIFT)?);
                let rhs: Vec<u64> = fx.iter().zip(&fy).map(|(&p, &q)| (mul(a, p) + q) % P).collect();
                compare(&lhs, &rhs, width).map_err(|e| format!("LDE(a·x + y) != a·LDE(x) + LDE(y): {e}"))
            })?;
        }

        for (log_h, width) in [(0, 5), (clamp(13), 16), (max, 3)] {
            let c = self.candidate(2);
            let h = 1usize << log_h;
            self.check("zero_input", log_h, width, || {
                let zeros = vec![0u64; h * width];
                compare(&c.dft(&zeros, width)?, &zeros, width)?;
                compare(&c.coset_lde(&zeros, width, 1, SHIFT)?, &vec![0; 2 * h * width], width)
            })?;
            let mut rng = self.rng("constant", log_h as u64);
            let k = rng.field();
            self.check("constant_input", log_h, width, || {
                let constant = vec![k; h * width];
                let mut want = vec![0u64; h * width];
                want[..width].fill(mul(k, h as u64 % P));
                compare(&c.dft(&constant, width)?, &want, width).map_err(|e| format!("dft of a constant: {e}"))?;
                compare(&c.coset_lde(&constant, width, 2, SHIFT)?, &vec![k; 4 * h * width], width)
                    .map_err(|e| format!("LDE of a constant is not constant: {e}"))
            })?;
        }

        // Repeated calls on inputs that differ only in their last row: a kernel that remembers
        // results (keyed on anything short of the whole input) answers the second one wrongly.
        let (log_h, width) = (clamp(14), 16);
        let mut rng = self.rng("fresh_calls", 0);
        let a = random_matrix(&mut rng, 1 << log_h, width);
        let mut b = a.clone();
        let last = b.len() - 1;
        b[last] = (b[last] + 1) % P;
        let c = self.candidate(2);
        self.check("fresh_calls", log_h, width, || {
            let op = Op::CosetLde { added_bits: 1, shift: SHIFT };
            for (name, input) in [("A", &a), ("B", &b), ("A again", &a)] {
                compare_op(op, &c, input, width, &mut rng).map_err(|e| format!("call {name}: {e}"))?;
            }
            Ok(())
        })?;

        // Every thread count gives the same bits.
        let (log_h, width) = (clamp(15), 17);
        let mut rng = self.rng("threads", 0);
        let input = random_matrix(&mut rng, 1 << log_h, width);
        let candidates: Vec<(usize, Candidate)> = [1, 2, 3, 4, 7].map(|t| (t, self.candidate(t))).into();
        self.check("threads", log_h, width, || {
            let want = candidates[0].1.coset_lde(&input, width, 1, SHIFT)?;
            for (t, c) in &candidates[1..] {
                let got = c.coset_lde(&input, width, 1, SHIFT)?;
                compare(&got, &want, width).map_err(|e| format!("{t} threads differ from 1: {e}"))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_check_finds_a_single_wrong_entry() {
        let mut rng = Seed([1; 32]).rng("t", 0);
        let (h, w) = (64usize, 5usize);
        let input = random_matrix(&mut rng, h, w);
        for op in [Op::Dft, Op::Idft, Op::CosetDft(7), Op::CosetLde { added_bits: 2, shift: 31 }] {
            let mut out = op.run_reference(&input, w);
            linear_check(op, &input, &out, w, &mut rng).unwrap();
            let k = out.len() - 3;
            out[k] = (out[k] + 1) % P;
            assert!(linear_check(op, &input, &out, w, &mut rng).is_err(), "{}", op.name());
        }
    }

    #[test]
    fn compare_names_the_first_wrong_entry() {
        assert!(compare(&[1, 2, 3, 4], &[1, 2, 3, 4], 2).is_ok());
        let err = compare(&[1, 2, 3, 9], &[1, 2, 3, 4], 2).unwrap_err();
        assert!(err.starts_with("row 1 column 1: got 9, reference 4"), "{err}");
        assert!(compare(&[1], &[1, 2], 1).is_err());
    }
}
