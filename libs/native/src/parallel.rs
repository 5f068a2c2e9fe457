//! Per-item work of a batch split over the machine's cores, results in order.

/// Below this many items a batch runs on the calling thread alone.
const MIN_ITEMS: usize = 64;
/// At most this many threads: the database and the interpreter share the cores.
const MAX_THREADS: usize = 4;

/// `f(index, item)` of every item, in item order, on up to [`MAX_THREADS`] threads.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    if threads < 2 || items.len() < MIN_ITEMS {
        return items.iter().enumerate().map(|(i, x)| f(i, x)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    let base = c * chunk;
                    part.iter()
                        .enumerate()
                        .map(|(i, x)| f(base + i, x))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_item_order_and_indexes() {
        let items: Vec<u32> = (0..1000).collect();
        let got = super::map(&items, |i, x| (i, x * 2));
        assert_eq!(
            got,
            (0..1000).map(|i| (i as usize, i * 2)).collect::<Vec<_>>()
        );
        assert_eq!(super::map(&items[..3], |i, x| i as u32 + x), vec![0, 2, 4]);
    }
}
