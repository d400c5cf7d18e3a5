//! Decode images in parallel, off the caller's thread, and hand them over in ordered batches.
//!
//! Shape of the machinery (all plain std threads, so shutdown is easy to reason about):
//! - one coordinator thread walks `order` batch by batch;
//! - for each batch it starts `workers` scoped threads that pull positions from a shared
//!   counter (so a slow image does not hold up a fixed share of the batch) and decode them;
//! - the scope joins the workers, the coordinator assembles the batch in order and sends it on a
//!   bounded channel. The bound is the prefetch: decoding runs at most a couple of batches ahead
//!   of the consumer, so memory stays flat however long the run is.
//!
//! Stopping: when the receiver is dropped, the next `send` fails and the coordinator returns.
//! Workers only live inside one batch's scope, so once the coordinator is gone no thread is
//! left. The worst-case delay is finishing the batch being decoded at that moment.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::decode::{load_rgb, to_chw_f32, Preprocess};

/// Batches decoded ahead of the consumer (the channel's capacity).
const PREFETCH_BATCHES: usize = 2;

/// One batch of decoded images.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Image indices (into the `paths` given to [`spawn_loader`]) of the images that decoded,
    /// in `order` order.
    pub indices: Vec<usize>,
    /// `[indices.len(), 3, h, w]` floats in [0, 1], one image after the other.
    pub pixels: Vec<f32>,
    /// Images of this batch that could not be used, with the reason.
    pub failures: Vec<(usize, String)>,
}

/// Start decoding `order` (indices into `paths`) in batches of `batch_size`.
///
/// Batch `k` covers `order[k*batch_size..(k+1)*batch_size]`; batches arrive in order and the
/// channel closes after the last one. `size` is (width, height); `workers` decoding threads
/// run at a time (at least one). Drop the receiver to stop early.
pub fn spawn_loader(
    paths: Arc<Vec<PathBuf>>,
    order: Vec<usize>,
    batch_size: usize,
    prep: Preprocess,
    size: (u32, u32),
    workers: usize,
) -> Receiver<Batch> {
    spawn_loader_joinable(paths, order, batch_size, prep, size, workers).0
}

/// Like [`spawn_loader`], but also returns the coordinator's handle. When it has joined, every
/// loader thread has exited (tests use this; the app can use it to wait for a clean stop).
pub fn spawn_loader_joinable(
    paths: Arc<Vec<PathBuf>>,
    order: Vec<usize>,
    batch_size: usize,
    prep: Preprocess,
    size: (u32, u32),
    workers: usize,
) -> (Receiver<Batch>, thread::JoinHandle<()>) {
    let (tx, rx) = bounded(PREFETCH_BATCHES);
    let job = Job {
        paths,
        prep,
        size,
        workers: workers.max(1),
    };
    let batch_size = batch_size.max(1);
    let handle = thread::Builder::new()
        .name("atlas-loader".into())
        .spawn(move || job.run(&order, batch_size, &tx))
        .expect("failed to spawn the image loader thread");
    (rx, handle)
}

/// Everything a batch needs besides its indices.
struct Job {
    paths: Arc<Vec<PathBuf>>,
    prep: Preprocess,
    size: (u32, u32),
    workers: usize,
}

/// Outcome for one image: planar pixels, or the reason it failed.
type Decoded = Result<Vec<f32>, String>;

impl Job {
    fn run(&self, order: &[usize], batch_size: usize, tx: &Sender<Batch>) {
        for chunk in order.chunks(batch_size) {
            let batch = self.load_batch(chunk);
            if tx.send(batch).is_err() {
                return; // receiver dropped: the consumer has stopped listening
            }
        }
    }

    fn load_batch(&self, chunk: &[usize]) -> Batch {
        let results = self.decode_all(chunk);
        let mut batch = Batch::default();
        for (&index, result) in chunk.iter().zip(results) {
            match result {
                Some(Ok(pixels)) => {
                    batch.indices.push(index);
                    batch.pixels.extend_from_slice(&pixels);
                }
                Some(Err(reason)) => batch.failures.push((index, reason)),
                // Only if a worker thread died, which `load_rgb`'s catch_unwind should prevent.
                None => batch
                    .failures
                    .push((index, "internal error: decoding thread crashed".into())),
            }
        }
        batch
    }

    /// Decode every image of `chunk` on `workers` threads; results come back in chunk order.
    fn decode_all(&self, chunk: &[usize]) -> Vec<Option<Decoded>> {
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<Decoded>> = (0..chunk.len()).map(|_| None).collect();
        thread::scope(|scope| {
            let handles: Vec<_> = (0..self.workers.min(chunk.len()))
                .map(|w| {
                    let next = &next;
                    thread::Builder::new()
                        .name(format!("atlas-decode-{w}"))
                        .spawn_scoped(scope, move || {
                            let mut done = Vec::new();
                            loop {
                                let pos = next.fetch_add(1, Ordering::Relaxed);
                                let Some(&index) = chunk.get(pos) else { break };
                                done.push((pos, self.decode_one(index)));
                            }
                            done
                        })
                        .expect("failed to spawn an image decoding thread")
                })
                .collect();
            for handle in handles {
                // A panicked worker leaves its slots as `None`; `load_batch` reports them.
                for (pos, result) in handle.join().unwrap_or_default() {
                    results[pos] = Some(result);
                }
            }
        });
        results
    }

    fn decode_one(&self, index: usize) -> Decoded {
        let path = self
            .paths
            .get(index)
            .ok_or_else(|| format!("image index {index} is out of range"))?;
        load_rgb(path, self.prep, self.size).map(|img| to_chw_f32(&img))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_and_bad_indices_become_failures() {
        let paths = Arc::new(vec![PathBuf::from("/definitely/not/here.png")]);
        let rx = spawn_loader(paths, vec![0, 5], 4, Preprocess::Squash, (8, 8), 2);
        let batches: Vec<Batch> = rx.iter().collect();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert!(b.indices.is_empty() && b.pixels.is_empty());
        assert_eq!(b.failures[0].0, 0);
        assert!(
            b.failures[0].1.starts_with("cannot read file"),
            "{:?}",
            b.failures
        );
        assert_eq!(
            b.failures[1],
            (5, "image index 5 is out of range".to_string())
        );
    }

    #[test]
    fn empty_order_closes_the_channel() {
        let rx = spawn_loader(Arc::new(vec![]), vec![], 0, Preprocess::Squash, (8, 8), 0);
        assert!(rx.recv().is_err());
    }
}
