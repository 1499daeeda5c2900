//! The DFT interface.

use crate::matrix::RowMajorMatrix;
use baby_bear::BabyBear;

/// DFTs over the two-adic subgroups of BabyBear, on every column of a row-major matrix at once.
///
/// Heights must be powers of two. `g_h` below is `BabyBear::two_adic_generator(log2(h))`.
/// The provided methods are the textbook reductions to `dft_batch`, written for clarity (plain
/// scalar loops); an implementation overrides them with faster equivalents.
pub trait TwoAdicSubgroupDft: Send + Sync {
    /// Forward DFT in natural order: `out[i][c] = Σ_j in[j][c] · g_h^(i·j)`.
    fn dft_batch(&self, mat: RowMajorMatrix) -> RowMajorMatrix;

    /// Inverse DFT: `out[j][c] = h^(−1) · Σ_i in[i][c] · g_h^(−i·j)`, so that
    /// `idft_batch(dft_batch(m)) == m`. Computed as a forward DFT, a scaling by 1/h and the row
    /// swap i ↔ h − i (because g^(−ij) = g^((h−i)j)).
    fn idft_batch(&self, mat: RowMajorMatrix) -> RowMajorMatrix {
        let height = mat.height();
        let mut out = self.dft_batch(mat);
        let h_inv = BabyBear::from_u64(height as u64).inverse();
        for x in out.values.iter_mut() {
            *x *= h_inv;
        }
        for i in 1..height / 2 {
            for c in 0..out.width {
                out.values.swap(i * out.width + c, (height - i) * out.width + c);
            }
        }
        out
    }

    /// Coset DFT: `out[i][c] = Σ_j in[j][c] · (shift · g_h^i)^j` (row j scaled by shift^j, then
    /// a DFT).
    fn coset_dft_batch(&self, mut mat: RowMajorMatrix, shift: BabyBear) -> RowMajorMatrix {
        let width = mat.width();
        let mut s = BabyBear::ONE;
        for row in mat.values.chunks_mut(width) {
            for x in row {
                *x *= s;
            }
            s *= shift;
        }
        self.dft_batch(mat)
    }

    /// Coset low-degree extension: the columns hold evaluations on the subgroup of order h;
    /// the result holds the same polynomials' evaluations on `shift · K`, K of order
    /// `h · 2^added_bits`, in natural order: `out[i] = f(shift · g_(h·2^b)^i)`.
    /// Inverse DFT, zero-pad to `h · 2^added_bits` rows, coset DFT.
    fn coset_lde_batch(&self, mat: RowMajorMatrix, added_bits: usize, shift: BabyBear) -> RowMajorMatrix {
        let height = mat.height();
        let mut coeffs = self.idft_batch(mat);
        coeffs.pad_to_height(height << added_bits);
        self.coset_dft_batch(coeffs, shift)
    }

    /// The LDE on the subgroup itself (shift 1).
    fn lde_batch(&self, mat: RowMajorMatrix, added_bits: usize) -> RowMajorMatrix {
        self.coset_lde_batch(mat, added_bits, BabyBear::ONE)
    }
}
