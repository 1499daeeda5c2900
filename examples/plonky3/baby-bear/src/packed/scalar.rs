//! The scalar fallback: a single field element is a one-lane packed value.

use super::PackedBabyBear;
use crate::BabyBear;

impl PackedBabyBear for BabyBear {
    const WIDTH: usize = 1;

    #[inline(always)]
    fn broadcast(x: BabyBear) -> Self {
        x
    }

    #[inline(always)]
    fn load(src: &[BabyBear]) -> Self {
        src[0]
    }

    #[inline(always)]
    fn store(self, dst: &mut [BabyBear]) {
        dst[0] = self;
    }
}
