//! Background jobs: every long task runs on its own thread and talks to whoever started it (the
//! CLI's progress bar or the app's UI thread) only through a crossbeam channel of [`JobEvent`]s,
//! and is stopped through a shared [`CancelToken`].
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::data::Problem;

/// Where a job stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    pub elapsed_s: f64,
}

impl Progress {
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64) as f32
        }
    }

    /// Seconds left at the rate seen so far.
    pub fn eta_s(&self) -> Option<f64> {
        (self.done > 0 && self.total >= self.done)
            .then(|| self.elapsed_s / self.done as f64 * (self.total - self.done) as f64)
    }
}

#[derive(Clone, Debug)]
pub enum JobEvent<T> {
    Progress(Progress),
    /// An input that was skipped, with the reason (the job goes on).
    Problem(Problem),
    /// A line worth showing to the user.
    Log(String),
    /// A partial result, for jobs that deliver as they go (e.g. predictions batch by batch).
    Partial(T),
    /// The job ended: its result, `Err` with a readable message, or cancelled.
    Finished(JobOutcome<T>),
}

#[derive(Clone, Debug)]
pub enum JobOutcome<T> {
    Done(T),
    Cancelled,
    Failed(String),
}

/// Shared flag a job polls between units of work.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The sending half a job uses; sending never fails the job (a closed receiver just means nobody
/// is watching, e.g. the window was closed).
#[derive(Clone)]
pub struct Reporter<T> {
    tx: Sender<JobEvent<T>>,
    started: Instant,
}

impl<T> Reporter<T> {
    pub fn new(tx: Sender<JobEvent<T>>) -> Self {
        Reporter {
            tx,
            started: Instant::now(),
        }
    }
    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let _ = self.tx.send(JobEvent::Progress(Progress {
            stage: stage.into(),
            done,
            total,
            elapsed_s,
        }));
    }
    pub fn problem(&self, problem: Problem) {
        let _ = self.tx.send(JobEvent::Problem(problem));
    }
    pub fn log(&self, line: impl Into<String>) {
        let _ = self.tx.send(JobEvent::Log(line.into()));
    }
    pub fn partial(&self, item: T) {
        let _ = self.tx.send(JobEvent::Partial(item));
    }
    pub fn finish(&self, outcome: JobOutcome<T>) {
        let _ = self.tx.send(JobEvent::Finished(outcome));
    }
}

/// A running job as seen by its owner.
pub struct JobHandle<T> {
    pub events: Receiver<JobEvent<T>>,
    pub cancel: CancelToken,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

/// Runs `work` on a new named thread; its `Result` becomes the `Finished` event.
pub fn spawn<T, F>(name: &str, work: F) -> JobHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&Reporter<T>, &CancelToken) -> anyhow::Result<Option<T>> + Send + 'static,
{
    let (tx, rx) = crossbeam_channel::unbounded();
    let cancel = CancelToken::default();
    let token = cancel.clone();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let reporter = Reporter::new(tx);
            let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(&reporter, &token)
            })) {
                Ok(Ok(Some(value))) => JobOutcome::Done(value),
                Ok(Ok(None)) => JobOutcome::Cancelled,
                Ok(Err(e)) => JobOutcome::Failed(format!("{e:#}")),
                Err(_) => JobOutcome::Failed(
                    "the job crashed (internal error); finished work is kept".into(),
                ),
            };
            reporter.finish(outcome);
        })
        .expect("spawn job thread");
    JobHandle {
        events: rx,
        cancel,
        thread: Some(thread),
    }
}
