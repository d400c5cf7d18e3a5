//! Background jobs: every long task runs on its own thread and talks to whoever started it (the
//! CLI's progress bar or the app's UI thread) only through a crossbeam channel of [`JobEvent`]s,
//! and is stopped through a shared [`CancelToken`].
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::data::Problem;

/// Where a job stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    /// Seconds since the job started.
    pub elapsed_s: f64,
    /// Seconds left in this stage, from the stage's own rate (see [`StageEta`]).
    pub eta_seconds: Option<f64>,
}

impl Progress {
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64) as f32
        }
    }

    /// Seconds left in the current stage at the rate this stage has run so far in this process.
    pub fn eta_s(&self) -> Option<f64> {
        self.eta_seconds
    }
}

/// The ETA of the current stage. The rate is measured from the stage's own start, on the work
/// done in this process: the time spent in earlier stages (collection before the layout, say)
/// and the work a resumed stage found already finished (its first `done`) do not count.
#[derive(Clone, Debug, Default)]
pub struct StageEta {
    stage: String,
    /// Clock reading and `done` at the stage's first report in this process.
    start_s: f64,
    done_at_start: u64,
    last_done: u64,
}

impl StageEta {
    /// Records a report at clock reading `now_s` (seconds, any origin) and returns the estimate.
    /// A new stage name, or `done` going backwards, starts a new stage.
    pub fn observe(&mut self, stage: &str, done: u64, total: u64, now_s: f64) -> Option<f64> {
        if stage != self.stage || done < self.last_done {
            self.stage = stage.to_owned();
            self.start_s = now_s;
            self.done_at_start = done;
        }
        self.last_done = done;
        let worked = done - self.done_at_start;
        let seconds = now_s - self.start_s;
        if worked == 0 || seconds <= 0.0 || total < done {
            return None;
        }
        Some(seconds / worked as f64 * (total - done) as f64)
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
    eta: Arc<Mutex<StageEta>>,
}

impl<T> Reporter<T> {
    pub fn new(tx: Sender<JobEvent<T>>) -> Self {
        Reporter {
            tx,
            started: Instant::now(),
            eta: Arc::default(),
        }
    }
    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let eta_seconds = self
            .eta
            .lock()
            .map_or(None, |mut eta| eta.observe(stage, done, total, elapsed_s));
        let _ = self.tx.send(JobEvent::Progress(Progress {
            stage: stage.into(),
            done,
            total,
            elapsed_s,
            eta_seconds,
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

impl<T> JobHandle<T> {
    /// Asks the job to stop and hands over its thread (once) for the caller to join.
    pub fn stop(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.cancel.cancel();
        self.thread.take()
    }
}

/// Anything that owns a job thread, so that one loop can stop every job of the app on close.
pub trait StopJob {
    /// Cancels the job and hands over its thread (once).
    fn stop_job(&mut self) -> Option<std::thread::JoinHandle<()>>;
}

impl<T> StopJob for JobHandle<T> {
    fn stop_job(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.stop()
    }
}

/// Joins `threads`, waiting at most until `deadline`; returns how many were still running then
/// (a thread blocked in a native call, e.g. a file dialog, cannot be interrupted).
pub fn join_until(threads: Vec<std::thread::JoinHandle<()>>, deadline: Instant) -> usize {
    let mut still_running = 0;
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            still_running += 1;
        }
    }
    still_running
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

#[cfg(test)]
mod tests {
    use super::StageEta;

    #[test]
    fn eta_uses_the_stage_own_start_not_the_job_start() {
        let mut eta = StageEta::default();
        // 60 s of collection, then icons: the icon stage's first report starts its clock.
        assert_eq!(eta.observe("collecting", 0, 10, 0.0), None);
        assert_eq!(eta.observe("collecting", 10, 10, 60.0), Some(0.0));
        assert_eq!(eta.observe("icons 10×10", 0, 24, 60.0), None);
        // One icon per second: 1/24 after 1 s leaves 23 s (not 61 s × 23).
        let e = eta.observe("icons 10×10", 1, 24, 61.0).unwrap();
        assert!((e - 23.0).abs() < 1e-9, "{e}");
        let e = eta.observe("icons 10×10", 5, 24, 65.0).unwrap();
        assert!((e - 19.0).abs() < 1e-9, "{e}");
    }

    #[test]
    fn resumed_work_is_not_counted_as_done_now() {
        let mut eta = StageEta::default();
        // The stage resumes with 20 of 24 already done on disk; nothing was measured yet.
        assert_eq!(eta.observe("icons 20×20", 20, 24, 100.0), None);
        // One more in 10 s: 3 left at 10 s each.
        let e = eta.observe("icons 20×20", 21, 24, 110.0).unwrap();
        assert!((e - 30.0).abs() < 1e-9, "{e}");
    }

    #[test]
    fn a_stage_that_restarts_resets_the_clock() {
        let mut eta = StageEta::default();
        eta.observe("pass", 0, 10, 0.0);
        eta.observe("pass", 5, 10, 5.0);
        // done goes backwards: a new pass of the same name.
        assert_eq!(eta.observe("pass", 0, 10, 100.0), None);
        let e = eta.observe("pass", 2, 10, 104.0).unwrap();
        assert!((e - 16.0).abs() < 1e-9, "{e}");
    }
}
