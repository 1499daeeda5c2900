//! An end-to-end FRI low-degree proof whose prover computes its low-degree extension with the
//! candidate and whose verifier uses only the reference.
//!
//! Statement: "the committed matrix is the coset LDE of this (public) trace, and it is
//! low-degree". The prover
//! 1. extends the trace (h rows, evaluations on the subgroup H) to the coset s·K, |K| = h·2^b,
//!    with the **candidate's** `coset_lde_batch`, and commits to its rows in a Merkle tree;
//! 2. draws α from the transcript and combines the columns: F_0 = Σ_c α^c · column_c;
//! 3. folds log2(h) times. Layer k lives on s^(2^k)·K^(2^k), where x and −x sit at positions i
//!    and i + M/2 (M the layer size); with β_k from the transcript,
//!    F_(k+1)(x²) = (F_k(x) + F_k(−x))/2 + β_k · (F_k(x) − F_k(−x))/(2x).
//!    Each layer after the first is committed in its own Merkle tree. After log2(h) folds a
//!    polynomial of degree < h is a constant, which the prover sends;
//! 4. answers queries drawn from the transcript: the two LDE rows of the query's pair, and the
//!    pair of every later layer, each with its Merkle path.
//!
//! The verifier replays the transcript, checks every path, recombines the rows with α, checks
//! every fold and the final constant, and checks that each opened LDE row equals the trace's
//! interpolant at that point (barycentric evaluation by the reference). A wrong LDE is either
//! not low-degree (the folds break) or not the trace's (the row check breaks).

use crate::candidate::Candidate;
use reference::harness::Seed;
use reference::sha256::digest;
use reference::{P, add, inv, mul, pow, sub, two_adic_generator};

type Hash = [u8; 32];

/// A Merkle tree over leaves given as byte strings (height padded to a power of two).
struct MerkleTree {
    /// levels[0] are the leaf hashes; the last level is the root.
    levels: Vec<Vec<Hash>>,
}

fn hash_pair(a: &Hash, b: &Hash) -> Hash {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    digest(&buf)
}

fn leaf_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect()
}

impl MerkleTree {
    fn new(leaves: impl Iterator<Item = Vec<u8>>) -> Self {
        let mut level: Vec<Hash> = leaves.map(|l| digest(&l)).collect();
        assert!(level.len().is_power_of_two());
        let mut levels = Vec::new();
        while level.len() > 1 {
            let next = level.chunks_exact(2).map(|p| hash_pair(&p[0], &p[1])).collect();
            levels.push(std::mem::replace(&mut level, next));
        }
        levels.push(level);
        MerkleTree { levels }
    }

    fn root(&self) -> Hash {
        self.levels.last().unwrap()[0]
    }

    fn path(&self, mut index: usize) -> Vec<Hash> {
        let mut out = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            out.push(level[index ^ 1]);
            index >>= 1;
        }
        out
    }
}

/// Verifies that `leaf` sits at `index` under `root`.
fn verify_path(root: &Hash, mut index: usize, leaf: &[u8], path: &[Hash]) -> bool {
    let mut h = digest(leaf);
    for sibling in path {
        h = if index & 1 == 0 { hash_pair(&h, sibling) } else { hash_pair(sibling, &h) };
        index >>= 1;
    }
    index == 0 && &h == root
}

/// Fiat–Shamir transcript: a running SHA-256 chain.
struct Transcript {
    state: Hash,
}

impl Transcript {
    fn new(seed: &Seed) -> Self {
        let mut material = b"poi-gate-fri-v1".to_vec();
        material.extend_from_slice(&seed.0);
        Transcript { state: digest(&material) }
    }

    fn absorb(&mut self, data: &[u8]) {
        let mut material = self.state.to_vec();
        material.extend_from_slice(data);
        self.state = digest(&material);
    }

    /// A uniform field element (rejection sampling on 31-bit words).
    fn challenge(&mut self) -> u64 {
        loop {
            self.absorb(b"challenge");
            let x = u32::from_le_bytes(self.state[..4].try_into().unwrap()) as u64 & 0x7fff_ffff;
            if x < P {
                return x;
            }
        }
    }

    fn index(&mut self, n: usize) -> usize {
        self.absorb(b"index");
        (u64::from_le_bytes(self.state[..8].try_into().unwrap()) % n as u64) as usize
    }
}

/// Public parameters of one proof.
#[derive(Copy, Clone, Debug)]
pub struct Params {
    pub log_h: usize,
    pub width: usize,
    pub added_bits: usize,
    pub queries: usize,
    pub shift: u64,
}

/// An opened value with its Merkle path.
struct Opening {
    values: Vec<u64>,
    path: Vec<Hash>,
}

struct QueryProof {
    /// The LDE rows at positions i and i + n/2.
    rows: [Opening; 2],
    /// For each committed fold layer k ≥ 1: the values at positions i_k and i_k + M_k/2.
    layers: Vec<[Opening; 2]>,
}

pub struct Proof {
    lde_root: Hash,
    layer_roots: Vec<Hash>,
    final_value: u64,
    queries: Vec<QueryProof>,
}

/// One fold: from F(x), F(−x) at x to F'(x²).
fn fold(fx: u64, fmx: u64, x: u64, beta: u64, inv_two: u64) -> u64 {
    let even = mul(add(fx, fmx), inv_two);
    let odd = mul(mul(sub(fx, fmx), inv_two), inv(x));
    add(even, mul(beta, odd))
}

/// Folds a whole layer on the domain shift·⟨g⟩ (natural order).
fn fold_layer(f: &[u64], shift: u64, g: u64, beta: u64) -> Vec<u64> {
    let half = f.len() / 2;
    let inv_two = inv(2);
    // Batch-invert the x's to keep the prover quick.
    let mut xs = Vec::with_capacity(half);
    let mut x = shift;
    for _ in 0..half {
        xs.push(x);
        x = mul(x, g);
    }
    let mut prefix = Vec::with_capacity(half);
    let mut acc = 1;
    for &x in &xs {
        prefix.push(acc);
        acc = mul(acc, x);
    }
    let mut acc_inv = inv(acc);
    let mut x_inv = vec![0; half];
    for i in (0..half).rev() {
        x_inv[i] = mul(acc_inv, prefix[i]);
        acc_inv = mul(acc_inv, xs[i]);
    }
    (0..half)
        .map(|i| {
            let (a, b) = (f[i], f[i + half]);
            add(mul(add(a, b), inv_two), mul(beta, mul(mul(sub(a, b), inv_two), x_inv[i])))
        })
        .collect()
}

/// Σ_c α^c · row[c].
fn combine(row: &[u64], alpha: u64) -> u64 {
    row.iter().rev().fold(0, |acc, &v| add(mul(acc, alpha), v))
}

/// Builds the proof; the LDE comes from the candidate.
pub fn prove(params: Params, trace: &[u64], candidate: &Candidate, seed: &Seed) -> Result<Proof, String> {
    let lde = candidate.coset_lde(trace, params.width, params.added_bits, params.shift)?;
    Ok(prove_from_lde(params, &lde, seed))
}

/// Builds the proof for a given LDE matrix (row-major, `width` columns).
pub fn prove_from_lde(params: Params, lde: &[u64], seed: &Seed) -> Proof {
    assert!(params.log_h >= 1, "FRI needs at least one fold");
    let w = params.width;
    let n = 1usize << (params.log_h + params.added_bits);
    assert_eq!(lde.len(), n * w);
    let tree = MerkleTree::new(lde.chunks_exact(w).map(leaf_bytes));
    let mut transcript = Transcript::new(seed);
    transcript.absorb(&tree.root());
    let alpha = transcript.challenge();

    let mut layer = lde.chunks_exact(w).map(|row| combine(row, alpha)).collect::<Vec<_>>();
    let (mut shift, mut g) = (params.shift, two_adic_generator(params.log_h + params.added_bits));
    let mut trees = Vec::new();
    let mut layers = Vec::new();
    for k in 0..params.log_h {
        if k > 0 {
            let t = MerkleTree::new(layer.iter().map(|&v| leaf_bytes(&[v])));
            transcript.absorb(&t.root());
            trees.push(t);
        }
        let beta = transcript.challenge();
        let next = fold_layer(&layer, shift, g, beta);
        layers.push(std::mem::replace(&mut layer, next));
        shift = mul(shift, shift);
        g = mul(g, g);
    }
    let final_value = layer[0];
    transcript.absorb(&final_value.to_le_bytes());

    let queries = (0..params.queries)
        .map(|_| {
            let i = transcript.index(n / 2);
            let row = |p: usize| Opening { values: lde[p * w..(p + 1) * w].to_vec(), path: tree.path(p) };
            let mut opened_layers = Vec::new();
            let mut m = n / 2;
            for (k, t) in trees.iter().enumerate() {
                let pos = i % (m / 2);
                let values = &layers[k + 1];
                opened_layers.push([pos, pos + m / 2].map(|p| Opening { values: vec![values[p]], path: t.path(p) }));
                m /= 2;
            }
            QueryProof { rows: [row(i), row(i + n / 2)], layers: opened_layers }
        })
        .collect();
    Proof { lde_root: tree.root(), layer_roots: trees.iter().map(|t| t.root()).collect(), final_value, queries }
}

/// Verifies the proof with reference arithmetic only.
pub fn verify(params: Params, trace: &[u64], proof: &Proof, seed: &Seed) -> Result<(), String> {
    let w = params.width;
    let h = 1usize << params.log_h;
    let n = h << params.added_bits;
    if proof.layer_roots.len() != params.log_h.saturating_sub(1) || proof.queries.len() != params.queries {
        return Err("proof has the wrong shape".into());
    }
    let mut transcript = Transcript::new(seed);
    transcript.absorb(&proof.lde_root);
    let alpha = transcript.challenge();
    let mut betas = Vec::new();
    for k in 0..params.log_h {
        if k > 0 {
            transcript.absorb(&proof.layer_roots[k - 1]);
        }
        betas.push(transcript.challenge());
    }
    transcript.absorb(&proof.final_value.to_le_bytes());
    let big_g = two_adic_generator(params.log_h + params.added_bits);
    let trace_values: Vec<u64> = trace.to_vec();
    let inv_two = inv(2);

    for (q, query) in proof.queries.iter().enumerate() {
        let i = transcript.index(n / 2);
        // The two LDE rows: in the tree, and equal to the trace's interpolant there.
        for (k, pos) in [i, i + n / 2].into_iter().enumerate() {
            let row = &query.rows[k];
            if row.values.len() != w || !verify_path(&proof.lde_root, pos, &leaf_bytes(&row.values), &row.path) {
                return Err(format!("query {q}: LDE row {pos} is not in the commitment"));
            }
            let x = mul(params.shift, pow(big_g, pos as u64));
            let ev = reference::PointEvaluator::new(h, x);
            let want = ev.eval_columns(&trace_values, w, &(0..w).collect::<Vec<_>>());
            if row.values != want {
                return Err(format!("query {q}: LDE row {pos} is not the trace's extension there"));
            }
        }
        // Folds.
        let (mut shift, mut g) = (params.shift, big_g);
        let mut pair = [combine(&query.rows[0].values, alpha), combine(&query.rows[1].values, alpha)];
        let mut pos = i;
        let mut m = n;
        for (k, &beta) in betas.iter().enumerate() {
            let x = mul(shift, pow(g, pos as u64));
            let folded = fold(pair[0], pair[1], x, beta, inv_two);
            m /= 2;
            shift = mul(shift, shift);
            g = mul(g, g);
            if k + 1 == params.log_h {
                if folded != proof.final_value {
                    return Err(format!("query {q}: last fold gives {folded}, final value is {}", proof.final_value));
                }
                break;
            }
            let opened = &query.layers[k];
            let next_pos = pos % (m / 2);
            for (j, p) in [next_pos, next_pos + m / 2].into_iter().enumerate() {
                let o = &opened[j];
                if o.values.len() != 1 || !verify_path(&proof.layer_roots[k], p, &leaf_bytes(&o.values), &o.path) {
                    return Err(format!("query {q}: layer {} position {p} is not in the commitment", k + 1));
                }
            }
            let here = if pos < m / 2 { opened[0].values[0] } else { opened[1].values[0] };
            if here != folded {
                return Err(format!("query {q}: fold {k} gives {folded}, layer {} holds {here}", k + 1));
            }
            pair = [opened[0].values[0], opened[1].values[0]];
            pos = next_pos;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::random_matrix;

    fn setup() -> (Params, Vec<u64>, Seed) {
        let params = Params { log_h: 8, width: 3, added_bits: 1, queries: 32, shift: 31 };
        let seed = Seed([7; 32]);
        let trace = random_matrix(&mut seed.rng("trace", 0), 1 << params.log_h, params.width);
        (params, trace, seed)
    }

    fn honest_lde(p: Params, trace: &[u64]) -> Vec<u64> {
        reference::coset_lde(trace, p.width, p.added_bits, p.shift)
    }

    #[test]
    fn honest_proof_verifies() {
        let (p, trace, seed) = setup();
        let proof = prove_from_lde(p, &honest_lde(p, &trace), &seed);
        verify(p, &trace, &proof, &seed).unwrap();
    }

    #[test]
    fn low_degree_lde_of_the_wrong_coset_is_rejected() {
        // Evaluations on K instead of 31·K: still low-degree, so only the row check can tell.
        let (p, trace, seed) = setup();
        let lde = reference::coset_lde(&trace, p.width, p.added_bits, 1);
        let err = verify(p, &trace, &prove_from_lde(p, &lde, &seed), &seed).unwrap_err();
        assert!(err.contains("extension"), "{err}");
    }

    #[test]
    fn lde_that_is_not_low_degree_is_rejected() {
        // A quarter of the rows corrupted in every column: the folds break at some query.
        let (p, trace, seed) = setup();
        let mut lde = honest_lde(p, &trace);
        for (i, x) in lde.iter_mut().enumerate() {
            if (i / p.width) % 4 == 1 {
                *x = (*x + 1) % P;
            }
        }
        assert!(verify(p, &trace, &prove_from_lde(p, &lde, &seed), &seed).is_err());
    }

    #[test]
    fn tampered_proofs_are_rejected() {
        let (p, trace, seed) = setup();
        let lde = honest_lde(p, &trace);
        let mut proof = prove_from_lde(p, &lde, &seed);
        proof.final_value = (proof.final_value + 1) % P;
        assert!(verify(p, &trace, &proof, &seed).is_err());
        let mut proof = prove_from_lde(p, &lde, &seed);
        proof.queries[0].rows[0].values[0] ^= 1;
        assert!(verify(p, &trace, &proof, &seed).unwrap_err().contains("commitment"));
        // A proof for one seed does not verify under another (its queries are elsewhere).
        let proof = prove_from_lde(p, &lde, &seed);
        assert!(verify(p, &trace, &proof, &Seed([8; 32])).is_err());
    }
}
