//! A dense row-major matrix of field elements.

use baby_bear::BabyBear;

/// `height × width` values, row after row; column `c` of row `r` is `values[r * width + c]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowMajorMatrix {
    pub values: Vec<BabyBear>,
    pub width: usize,
}

impl RowMajorMatrix {
    /// Panics unless `width > 0` and `values.len()` is a multiple of `width`.
    pub fn new(values: Vec<BabyBear>, width: usize) -> Self {
        assert!(width > 0, "matrix width must be positive");
        assert_eq!(values.len() % width, 0, "values do not fill whole rows");
        Self { values, width }
    }

    pub fn zeros(height: usize, width: usize) -> Self {
        Self::new(vec![BabyBear::ZERO; height * width], width)
    }

    #[inline]
    pub fn height(&self) -> usize {
        self.values.len() / self.width
    }

    #[inline]
    pub fn width(&self) -> usize {
        self.width
    }

    #[inline]
    pub fn row(&self, r: usize) -> &[BabyBear] {
        &self.values[r * self.width..(r + 1) * self.width]
    }

    #[inline]
    pub fn row_mut(&mut self, r: usize) -> &mut [BabyBear] {
        &mut self.values[r * self.width..(r + 1) * self.width]
    }

    /// Appends zero rows until the height is `height` (which must not be smaller).
    pub fn pad_to_height(&mut self, height: usize) {
        assert!(height >= self.height());
        self.values.resize(height * self.width, BabyBear::ZERO);
    }
}
