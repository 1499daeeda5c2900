//! Minimal fork-join helpers on `std::thread::scope`.

/// Below this many field elements a transform runs on the calling thread only: spawning costs
/// tens of microseconds, more than the work it would share.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 14;

/// The number of threads worth using for a matrix of `elements` values.
pub(crate) fn threads_for(elements: usize, threads: usize) -> usize {
    if elements < PARALLEL_MIN_ELEMENTS { 1 } else { threads.max(1) }
}

/// Calls `f` on every item, one item per thread; the calling thread takes the first item.
pub(crate) fn par_for_each<T: Send, F: Fn(T) + Sync>(items: Vec<T>, f: F) {
    if items.len() <= 1 {
        items.into_iter().for_each(&f);
        return;
    }
    let f = &f;
    std::thread::scope(|s| {
        let mut items = items.into_iter();
        let first = items.next();
        for item in items {
            s.spawn(move || f(item));
        }
        if let Some(item) = first {
            f(item);
        }
    });
}

/// Splits `n` units into at most `parts` contiguous ranges of nearly equal size (at least one
/// unit each); returns the range length to pass to `chunks_mut` (in units).
pub(crate) fn chunk_len(n: usize, parts: usize) -> usize {
    n.div_ceil(parts.max(1)).max(1)
}
