//! `floor`: measures this CPU's throughput of packed Montgomery butterflies on registers, the
//! compute floor the NTT's time is compared with.
//!
//! ```text
//! floor [--simd avx2|avx512] [--threads T] [--millis M] [--log-size N --width W [--added-bits B]]
//! ```
//!
//! Each thread runs K independent DIT butterflies (a, b) ↦ (a + t·b, a − t·b) on packed values
//! held in registers, over and over: no loads or stores in the loop, a constant twiddle whose
//! odd-lane shuffle is hoisted (the cheapest form a real kernel can reach), one Montgomery product,
//! one modular add and one modular subtract per butterfly. K in {4, 6, 8, 12} is tried and the
//! fastest kept, so the loop is throughput-bound rather than latency-bound. All threads run at
//! once, so the figure includes whatever the cores share.
//!
//! The arithmetic is written here, independently of the candidate's `baby-bear` crate, so that
//! a patch to the candidate cannot move the floor.
//!
//! Output: one JSON line with ns per vector butterfly (per core, and for all threads together)
//! and, if --log-size/--width are given, the floor for one coset LDE of that size:
//! (h/2·log2 h + n/2·log2 n) · W butterflies (inverse DFT of height h = 2^N, forward DFT of
//! height n = h·2^B) divided by the lanes, times the all-thread ns per vector butterfly.
//! The LDE's other multiplications (1/h scaling, coset shift) are not counted: the floor is a
//! lower bound.

// The SIMD helpers below are `unsafe fn`s made of intrinsics; marking each call again adds noise.
#![allow(unsafe_op_in_unsafe_fn)]

use std::process::exit;
use std::time::Instant;

const USAGE: &str = "usage: floor [--simd avx2|avx512] [--threads T] [--millis M] \
[--log-size N --width W [--added-bits B]]";

const P: u32 = 0x7800_0001;
const MU: u32 = 0x8800_0001;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MU, P};
    use core::arch::x86_64::*;

    #[inline(always)]
    unsafe fn odd(x: __m256i) -> __m256i {
        _mm256_castps_si256(_mm256_movehdup_ps(_mm256_castsi256_ps(x)))
    }

    /// (a, b) ↦ (a + t·b, a − t·b) with `t_odd` = t's odd lanes already moved down.
    #[inline(always)]
    pub unsafe fn butterfly(a: __m256i, b: __m256i, t: __m256i, t_odd: __m256i) -> (__m256i, __m256i) {
        let (mu, p) = (_mm256_set1_epi32(MU as i32), _mm256_set1_epi32(P as i32));
        let x_evn = _mm256_mul_epu32(b, t);
        let x_odd = _mm256_mul_epu32(odd(b), t_odd);
        let u_evn = _mm256_mul_epu32(_mm256_mul_epu32(x_evn, mu), p);
        let u_odd = _mm256_mul_epu32(_mm256_mul_epu32(x_odd, mu), p);
        let d = _mm256_blend_epi32::<0b1010_1010>(
            odd(_mm256_sub_epi32(x_evn, u_evn)),
            _mm256_sub_epi32(x_odd, u_odd),
        );
        let tb = _mm256_min_epu32(d, _mm256_add_epi32(d, p));
        let s = _mm256_add_epi32(a, tb);
        let s = _mm256_min_epu32(s, _mm256_sub_epi32(s, p));
        let r = _mm256_sub_epi32(a, tb);
        let r = _mm256_min_epu32(r, _mm256_add_epi32(r, p));
        (s, r)
    }

    /// `iters` rounds of K butterflies; returns a value depending on all of them.
    #[target_feature(enable = "avx2")]
    pub unsafe fn run<const K: usize>(iters: u64, seed: u32) -> u32 {
        let t = _mm256_set1_epi32((seed % P) as i32 | 1);
        let t_odd = odd(t);
        let mut a = [_mm256_setzero_si256(); K];
        let mut b = [_mm256_setzero_si256(); K];
        for k in 0..K {
            a[k] = _mm256_set1_epi32(((seed as usize + k) % P as usize) as i32);
            b[k] = _mm256_set1_epi32(((seed as usize * 7 + k) % P as usize) as i32);
        }
        for _ in 0..iters {
            for k in 0..K {
                let (x, y) = butterfly(a[k], b[k], t, t_odd);
                a[k] = x;
                b[k] = y;
            }
        }
        let mut acc = _mm256_setzero_si256();
        for k in 0..K {
            acc = _mm256_xor_si256(acc, _mm256_xor_si256(a[k], b[k]));
        }
        _mm256_extract_epi32::<3>(acc) as u32
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MU, P};
    use core::arch::x86_64::*;

    #[inline(always)]
    unsafe fn odd(x: __m512i) -> __m512i {
        _mm512_castps_si512(_mm512_movehdup_ps(_mm512_castsi512_ps(x)))
    }

    #[inline(always)]
    pub unsafe fn butterfly(a: __m512i, b: __m512i, t: __m512i, t_odd: __m512i) -> (__m512i, __m512i) {
        let (mu, p) = (_mm512_set1_epi32(MU as i32), _mm512_set1_epi32(P as i32));
        let x_evn = _mm512_mul_epu32(b, t);
        let x_odd = _mm512_mul_epu32(odd(b), t_odd);
        let u_evn = _mm512_mul_epu32(_mm512_mul_epu32(x_evn, mu), p);
        let u_odd = _mm512_mul_epu32(_mm512_mul_epu32(x_odd, mu), p);
        let d = _mm512_mask_blend_epi32(
            0xaaaa,
            odd(_mm512_sub_epi32(x_evn, u_evn)),
            _mm512_sub_epi32(x_odd, u_odd),
        );
        let tb = _mm512_min_epu32(d, _mm512_add_epi32(d, p));
        let s = _mm512_add_epi32(a, tb);
        let s = _mm512_min_epu32(s, _mm512_sub_epi32(s, p));
        let r = _mm512_sub_epi32(a, tb);
        let r = _mm512_min_epu32(r, _mm512_add_epi32(r, p));
        (s, r)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn run<const K: usize>(iters: u64, seed: u32) -> u32 {
        let t = _mm512_set1_epi32((seed % P) as i32 | 1);
        let t_odd = odd(t);
        let mut a = [_mm512_setzero_si512(); K];
        let mut b = [_mm512_setzero_si512(); K];
        for k in 0..K {
            a[k] = _mm512_set1_epi32(((seed as usize + k) % P as usize) as i32);
            b[k] = _mm512_set1_epi32(((seed as usize * 7 + k) % P as usize) as i32);
        }
        for _ in 0..iters {
            for k in 0..K {
                let (x, y) = butterfly(a[k], b[k], t, t_odd);
                a[k] = x;
                b[k] = y;
            }
        }
        let mut acc = _mm512_setzero_si512();
        for k in 0..K {
            acc = _mm512_xor_si512(acc, _mm512_xor_si512(a[k], b[k]));
        }
        _mm512_reduce_add_epi32(acc) as u32
    }
}

#[derive(Copy, Clone, PartialEq)]
enum Isa {
    Avx2,
    Avx512,
}

impl Isa {
    fn lanes(self) -> usize {
        match self {
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn available(self) -> bool {
        match self {
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        }
    }
}

/// Runs `iters` rounds of K butterflies on `threads` threads at once; returns the wall time in ns.
fn timed(isa: Isa, k: usize, iters: u64, threads: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    let seed = 12345 + i as u32;
                    // SAFETY: `main` checked that the CPU has the ISA's features.
                    unsafe {
                        match (isa, k) {
                            (Isa::Avx2, 4) => avx2::run::<4>(iters, seed),
                            (Isa::Avx2, 6) => avx2::run::<6>(iters, seed),
                            (Isa::Avx2, 8) => avx2::run::<8>(iters, seed),
                            (Isa::Avx2, _) => avx2::run::<12>(iters, seed),
                            (Isa::Avx512, 4) => avx512::run::<4>(iters, seed),
                            (Isa::Avx512, 6) => avx512::run::<6>(iters, seed),
                            (Isa::Avx512, 8) => avx512::run::<8>(iters, seed),
                            (Isa::Avx512, _) => avx512::run::<12>(iters, seed),
                        }
                    }
                })
            })
            .collect();
        let folded = handles.into_iter().map(|h| h.join().unwrap()).fold(0u32, |a, b| a ^ b);
        std::hint::black_box(folded);
    });
    start.elapsed().as_nanos() as f64
}

fn usage_error(msg: &str) -> ! {
    eprintln!("floor: {msg}\n{USAGE}");
    exit(2);
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut isa = Isa::Avx2;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut millis = 300u64;
    let (mut log_size, mut width, mut added_bits) = (None, None, 1usize);
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let Some(v) = argv.get(i + 1) else { usage_error(&format!("{flag} needs a value")) };
        let num = |max: usize| match v.parse::<usize>() {
            Ok(n) if n <= max => n,
            _ => usage_error(&format!("{flag} expects an integer in 0..={max}")),
        };
        match flag {
            "--simd" => {
                isa = match v.as_str() {
                    "avx2" => Isa::Avx2,
                    "avx512" => Isa::Avx512,
                    _ => usage_error("--simd must be avx2 or avx512"),
                }
            }
            "--threads" => threads = num(256).max(1),
            "--millis" => millis = num(60_000).max(10) as u64,
            "--log-size" => log_size = Some(num(30)),
            "--width" => width = Some(num(1 << 20)),
            "--added-bits" => added_bits = num(8),
            _ => usage_error(&format!("unknown argument {flag:?}")),
        }
        i += 2;
    }
    if !isa.available() {
        eprintln!("floor: this CPU lacks {}", isa.name());
        exit(1);
    }
    // Calibrate on one thread, then measure each K for `millis` with all threads, best of 3.
    let mut best: Option<(f64, usize)> = None;
    for k in [4usize, 6, 8, 12] {
        let probe = 200_000u64;
        let per_iter = timed(isa, k, probe, 1) / probe as f64;
        let iters = ((millis as f64 * 1e6 / 4.0) / per_iter).max(1000.0) as u64;
        for _ in 0..3 {
            let ns = timed(isa, k, iters, threads);
            // Each thread ran iters·K butterflies in `ns` of wall time.
            let per_core = ns / (iters as f64 * k as f64);
            if best.is_none_or(|(b, _)| per_core < b) {
                best = Some((per_core, k));
            }
        }
    }
    let (per_core, k) = best.unwrap();
    let all = per_core / threads as f64;
    let lanes = isa.lanes();
    let mut line = format!(
        "{{\"simd\":\"{}\",\"lanes\":{lanes},\"threads\":{threads},\"best_k\":{k},\
\"ns_per_vector_butterfly_per_core\":{per_core:.4},\"ns_per_vector_butterfly\":{all:.5},\
\"ns_per_butterfly\":{:.6}",
        isa.name(),
        all / lanes as f64
    );
    if let (Some(n), Some(w)) = (log_size, width) {
        let h = 1f64 * (1u64 << n) as f64;
        let big = h * (1u64 << added_bits) as f64;
        let butterflies = (h / 2.0 * n as f64 + big / 2.0 * (n + added_bits) as f64) * w as f64;
        let floor_ns = butterflies / lanes as f64 * all;
        line.push_str(&format!(
            ",\"log_size\":{n},\"width\":{w},\"added_bits\":{added_bits},\"lde_butterflies\":{butterflies:.0},\
\"lde_floor_ns\":{floor_ns:.0}"
        ));
    }
    line.push('}');
    println!("{line}");
}
