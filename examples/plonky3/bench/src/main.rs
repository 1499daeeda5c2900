//! `bench`: times the candidate's coset LDE and prints one JSON line.
//!
//! ```text
//! bench --log-size N --width W --seed HEX64 [--added-bits B] [--reps R] [--threads T]
//!       [--simd auto|scalar|avx2|avx512]
//! ```
//!
//! One untimed warm-up call, then R timed calls of `coset_lde_batch(input, B, shift = 31)` on an
//! input of 2^N rows × W columns. Every call gets a fresh input derived from the seed, so a
//! kernel that remembers earlier results gains nothing. Every call's output (the warm-up's too)
//! is validated against the independent `reference` crate before the next call:
//!
//! 1. a random linear check over the *whole* output: Σ_i r_i · Σ_c α_c · out[i][c] must equal
//!    Σ_j u_j · Σ_c α_c · in[j][c], where u = r^T·(LDE matrix) is computed by the reference (one
//!    forward and one inverse NTT of a single column). A wrong entry anywhere makes it fail except
//!    with probability about 1/p;
//! 2. direct spot checks of sampled entries: barycentric evaluation of the input column's
//!    interpolant at the sampled output point.
//!
//! The challenges (r, α and the sample positions) are derived from the seed *and a digest of the
//! output*, so a kernel cannot learn which entries will be checked before it has committed to all
//! of them. Timing covers only the LDE call; input generation and validation are untimed.
//!
//! Exit status: 0 with `"ok":true`; 1 if the CPU lacks the SIMD path or an output is wrong;
//! 2 for bad arguments.

use baby_bear::{BabyBear, Simd};
use dft::{Radix2Dit, RowMajorMatrix, TwoAdicSubgroupDft};
use reference::harness::{Seed, digest_u32s, json_escape};
use std::process::exit;
use std::time::Instant;

const USAGE: &str = "usage: bench --log-size N --width W --seed HEX64 [--added-bits B (default 1)] \
[--reps R (default 1)] [--threads T (default: all cores)] [--simd auto|scalar|avx2|avx512]";

/// The LDE's coset shift: the multiplicative generator, as in Plonky3's benchmarks.
const SHIFT: u64 = 31;
/// Output rows spot-checked per call, and columns per sampled row.
const SAMPLE_ROWS: usize = 2;
const SAMPLE_COLS: usize = 4;

struct Args {
    log_size: usize,
    width: usize,
    seed: Seed,
    added_bits: usize,
    reps: usize,
    threads: usize,
    simd: Simd,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("bench: {msg}\n{USAGE}");
    exit(2);
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (mut log_size, mut width, mut seed) = (None, None, None);
    let (mut added_bits, mut reps, mut threads, mut simd) = (1usize, 1usize, None, Simd::detect());
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            exit(0);
        }
        let Some(value) = argv.get(i + 1) else { usage_error(&format!("{flag} needs a value")) };
        let number = |max: usize| -> usize {
            match value.parse::<usize>() {
                Ok(n) if n <= max => n,
                _ => usage_error(&format!("{flag} expects an integer in 0..={max}, got {value:?}")),
            }
        };
        match flag {
            "--log-size" => log_size = Some(number(24)),
            "--width" => width = Some(number(4096)),
            "--added-bits" => added_bits = number(4),
            "--reps" => reps = number(1000),
            "--threads" => threads = Some(number(256)),
            "--seed" => seed = Some(Seed::parse_hex(value).unwrap_or_else(|e| usage_error(&e))),
            "--simd" => {
                simd = Simd::parse(value).unwrap_or_else(|| usage_error(&format!("unknown --simd {value:?}")))
            }
            _ => usage_error(&format!("unknown argument {flag:?}")),
        }
        i += 2;
    }
    let log_size = log_size.unwrap_or_else(|| usage_error("--log-size is required"));
    let width = width.unwrap_or_else(|| usage_error("--width is required"));
    let seed = seed.unwrap_or_else(|| usage_error("--seed is required"));
    if width == 0 || reps == 0 {
        usage_error("--width and --reps must be positive");
    }
    if log_size + added_bits > 25 {
        usage_error("log-size + added-bits must be at most 25");
    }
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        usage_error("--threads must be positive");
    }
    Args { log_size, width, seed, added_bits, reps, threads, simd }
}

/// A seeded input: canonical values, row-major, 2^log_size × width.
fn make_input(args: &Args, label: &str, index: u64) -> Vec<u32> {
    let mut rng = args.seed.rng(label, index);
    (0..(args.width << args.log_size)).map(|_| rng.field() as u32).collect()
}

/// Checks one call's output; returns the number of directly sampled entries, or what was wrong.
fn validate(args: &Args, input: &[u32], output: &RowMajorMatrix, call: &str) -> Result<usize, String> {
    use reference::{P, mul, pow, two_adic_generator};
    let (w, h) = (args.width, 1usize << args.log_size);
    let n = h << args.added_bits;
    if output.width() != w || output.values.len() != n * w {
        return Err(format!(
            "{call}: output is {}x{}, expected {n}x{w}",
            output.values.len() / output.width().max(1),
            output.width()
        ));
    }
    let out: Vec<u32> = output.values.iter().map(|x| x.as_canonical_u32()).collect();
    if let Some(pos) = out.iter().position(|&x| x as u64 >= P) {
        return Err(format!("{call}: entry {pos} is not canonical"));
    }
    // Challenges bound to this output (Fiat–Shamir): seed ‖ call ‖ digest(output).
    let digest = digest_u32s(&out);
    let mut material = args.seed.0.to_vec();
    material.extend_from_slice(call.as_bytes());
    material.extend_from_slice(&digest);
    let mut rng = reference::harness::Rng::from_bytes(&reference::sha256::digest(&material));

    // 1. Linear check over every entry.
    let alpha: Vec<u64> = (0..w).map(|_| rng.field()).collect();
    let r: Vec<u64> = (0..n).map(|_| rng.field()).collect();
    // Row · α with a u128 accumulator (each product is below 2^62).
    let combine = |row: &[u32]| {
        let acc = row.iter().zip(&alpha).fold(0u128, |acc, (&x, &a)| acc + (x as u64 * a) as u128);
        (acc % P as u128) as u64
    };
    let lhs = out.chunks_exact(w).zip(&r).fold(0u64, |acc, (row, &ri)| (acc + mul(combine(row), ri)) % P);
    let v = reference::dft(&r, 1);
    let mut weights: Vec<u64> = v[..h].to_vec();
    reference::scale_rows_by_powers(&mut weights, 1, SHIFT);
    let u = reference::idft(&weights, 1);
    let rhs = input.chunks_exact(w).zip(&u).fold(0u64, |acc, (row, &uj)| (acc + mul(combine(row), uj)) % P);
    if lhs != rhs {
        return Err(format!("{call}: random linear check over the whole output failed (some entry is wrong)"));
    }

    // 2. Spot checks: out[i][c] == f_c(31 · G^i).
    let big_g = two_adic_generator(args.log_size + args.added_bits);
    let input_u64: Vec<u64> = input.iter().map(|&x| x as u64).collect();
    let mut sampled = 0;
    for _ in 0..SAMPLE_ROWS.min(n) {
        let i = rng.below(n as u64) as usize;
        let x = mul(SHIFT, pow(big_g, i as u64));
        let ev = reference::PointEvaluator::new(h, x);
        let cols: Vec<usize> = (0..SAMPLE_COLS.min(w)).map(|_| rng.below(w as u64) as usize).collect();
        let want = ev.eval_columns(&input_u64, w, &cols);
        for (&c, &want) in cols.iter().zip(&want) {
            let got = out[i * w + c] as u64;
            if got != want {
                return Err(format!("{call}: out[{i}][{c}] = {got}, reference says {want}"));
            }
            sampled += 1;
        }
    }
    Ok(sampled)
}

fn fail(args: &Args, msg: &str) -> ! {
    eprintln!("bench: {msg}");
    println!(
        "{{\"metric\":\"lde_ns\",\"ok\":false,\"error\":\"{}\",\"log_size\":{},\"width\":{},\"simd\":\"{}\"}}",
        json_escape(msg),
        args.log_size,
        args.width,
        args.simd
    );
    exit(1);
}

/// Keeps freed memory inside the process (glibc: no mmap for large blocks, no trimming), so that
/// after the warm-up call no timed call pays first-touch page faults. On this VM a fresh GiB costs
/// 0.4–2.8 s of kernel page clearing, which swamped and randomised the transform's own time; the
/// metric is meant to measure the transform. The candidate cannot undo this (it is read-only
/// process setup done before any allocation of note).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_MAX: i32 = -4;
    // SAFETY: mallopt only adjusts glibc's allocator parameters; called before other threads exist.
    unsafe {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() {
    keep_freed_memory();
    let args = parse_args();
    let dft = match Radix2Dit::new(args.simd, args.threads) {
        Ok(d) => d,
        Err(e) => fail(&args, &format!("cannot run --simd {}: {e}", args.simd)),
    };
    let shift = BabyBear::new(SHIFT as u32);
    let mut samples_ns = Vec::with_capacity(args.reps);
    let mut validated = 0;
    for call in 0..=args.reps {
        // Call 0 is the untimed warm-up, on its own input stream.
        let (label, index) = if call == 0 { ("warmup", 0) } else { ("input", call as u64 - 1) };
        let input = make_input(&args, label, index);
        let mat = RowMajorMatrix::new(input.iter().map(|&x| BabyBear::new(x)).collect(), args.width);
        let start = Instant::now();
        let out = dft.coset_lde_batch(mat, args.added_bits, shift);
        let ns = start.elapsed().as_nanos() as u64;
        let name = if call == 0 { "warm-up call".to_string() } else { format!("call {call}") };
        match validate(&args, &input, &out, &name) {
            Ok(k) => validated += k,
            Err(msg) => fail(&args, &msg),
        }
        if call > 0 {
            samples_ns.push(ns);
        }
    }
    let mut sorted = samples_ns.clone();
    sorted.sort_unstable();
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2
    };
    let samples: Vec<String> = samples_ns.iter().map(|x| x.to_string()).collect();
    println!(
        "{{\"metric\":\"lde_ns\",\"value\":{median},\"reps\":{},\"samples_ns\":[{}],\"log_size\":{},\"width\":{},\
\"added_bits\":{},\"threads\":{},\"simd\":\"{}\",\"validated\":{validated},\"linear_checks\":{},\"ok\":true}}",
        args.reps,
        samples.join(","),
        args.log_size,
        args.width,
        args.added_bits,
        args.threads,
        args.simd,
        args.reps + 1,
    );
}
