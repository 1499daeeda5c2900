//! `gate`: the proof-verification gate of the NTT target.
//!
//! ```text
//! gate --seed HEX64 [--simd auto|scalar|avx2|avx512] [--max-log-size N (default 18)]
//! ```
//!
//! Deterministic given (candidate code, seed, SIMD path). In order, stopping at the first failure:
//! 1. the candidate's field arithmetic against the reference;
//! 2. dft, idft, coset_dft and coset_lde against the reference at heights 2^0 … 2^N and several
//!    widths (odd ones too), with thread counts 1–3;
//! 3. round trips, linearity, zero and constant inputs, repeated calls on nearly equal inputs,
//!    agreement across thread counts;
//! 4. an end-to-end FRI proof (see `fri.rs`) whose prover uses the candidate's LDE and whose
//!    verifier uses only the reference.
//!
//! Progress goes to stderr; exactly one JSON line goes to stdout:
//! `{"gate":"pass","checks":N,"seed":…,"simd":…,"ms":T}` (exit 0) or
//! `{"gate":"fail","check":…,"log_size":…,"width":…,"detail":…,"seed":…}` (exit 1).
//! Bad arguments: a usage message and exit 2.

mod candidate;
mod checks;
mod fri;

use baby_bear::Simd;
use checks::{Failure, Gate, random_matrix};
use reference::harness::{Seed, json_escape};
use std::process::exit;
use std::time::Instant;

const USAGE: &str = "usage: gate --seed HEX64 [--simd auto|scalar|avx2|avx512] [--max-log-size N (0..=20, default 18)]";

fn usage_error(msg: &str) -> ! {
    eprintln!("gate: {msg}\n{USAGE}");
    exit(2);
}

fn parse_args() -> (Seed, Simd, usize) {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (mut seed, mut simd, mut max_log) = (None, Simd::detect(), 18usize);
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            exit(0);
        }
        let Some(value) = argv.get(i + 1) else { usage_error(&format!("{flag} needs a value")) };
        match flag {
            "--seed" => seed = Some(Seed::parse_hex(value).unwrap_or_else(|e| usage_error(&e))),
            "--simd" => simd = Simd::parse(value).unwrap_or_else(|| usage_error(&format!("unknown --simd {value:?}"))),
            "--max-log-size" => {
                max_log = match value.parse::<usize>() {
                    Ok(n) if n <= 20 => n,
                    _ => usage_error("--max-log-size expects an integer in 0..=20"),
                }
            }
            _ => usage_error(&format!("unknown argument {flag:?}")),
        }
        i += 2;
    }
    (seed.unwrap_or_else(|| usage_error("--seed is required")), simd, max_log)
}

fn report_failure(f: &Failure, seed: &Seed) -> ! {
    eprintln!("gate: FAIL {} at log_size {} width {}: {}", f.check, f.log_size, f.width, f.detail);
    println!(
        "{{\"gate\":\"fail\",\"check\":\"{}\",\"log_size\":{},\"width\":{},\"detail\":\"{}\",\"seed\":\"{}\"}}",
        json_escape(&f.check),
        f.log_size,
        f.width,
        json_escape(&f.detail),
        seed.to_hex()
    );
    exit(1);
}

/// The FRI proof of step 4, at the largest size the run allows (up to 2^14 rows).
fn fri_check(gate: &mut Gate) -> Result<(), Failure> {
    let log_h = gate.max_log_size.clamp(1, 14);
    let params = fri::Params { log_h, width: 8, added_bits: 1, queries: 32, shift: checks::SHIFT };
    let mut rng = gate.seed.rng("fri", 0);
    let trace = random_matrix(&mut rng, 1 << log_h, params.width);
    let seed = gate.seed;
    let candidate = candidate::Candidate::new(gate.simd, 2).expect("checked at start-up");
    gate.check("fri", log_h, params.width, || {
        let proof = fri::prove(params, &trace, &candidate, &seed)?;
        fri::verify(params, &trace, &proof, &seed).map_err(|e| format!("FRI verification failed: {e}"))
    })
}

/// Keeps freed memory in the process (glibc: no mmap for large blocks, no trimming): the gate
/// allocates many large short-lived buffers, and on this VM first-touch page faults would
/// otherwise dominate its run time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: adjusts glibc's allocator parameters; called before other threads exist.
    unsafe {
        mallopt(-4, 0); // M_MMAP_MAX
        mallopt(-1, i32::MAX); // M_TRIM_THRESHOLD
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() {
    keep_freed_memory();
    let (seed, simd, max_log_size) = parse_args();
    let start = Instant::now();
    if !simd.is_available() {
        let f = Failure {
            check: "simd_unavailable".into(),
            log_size: 0,
            width: 0,
            detail: format!("--simd {simd} needs the CPU feature {}, which this CPU lacks", simd.cpu_feature()),
        };
        report_failure(&f, &seed);
    }
    // A candidate's panic is reported as a failed check; keep its message short on stderr.
    std::panic::set_hook(Box::new(|info| eprintln!("gate: candidate panicked: {info}")));
    let mut gate = Gate { seed, simd, max_log_size, checks: 0 };
    type Step = fn(&mut Gate) -> Result<(), Failure>;
    let steps: [(&str, Step); 4] = [
        ("field arithmetic", Gate::field_checks),
        ("transforms against the reference", Gate::transform_checks),
        ("properties", Gate::property_checks),
        ("FRI proof", fri_check),
    ];
    for (name, step) in steps {
        let t = Instant::now();
        if let Err(f) = step(&mut gate) {
            report_failure(&f, &seed);
        }
        eprintln!("gate: {name}: ok ({} checks so far, {} ms)", gate.checks, t.elapsed().as_millis());
    }
    println!(
        "{{\"gate\":\"pass\",\"checks\":{},\"seed\":\"{}\",\"simd\":\"{}\",\"ms\":{}}}",
        gate.checks,
        seed.to_hex(),
        simd,
        start.elapsed().as_millis()
    );
}
