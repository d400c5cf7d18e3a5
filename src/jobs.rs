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

/// What a job sends: `P` is its partial results (by default the same type as its final result
/// `T`; jobs that deliver everything as partials end with a different `T`, often `()`).
#[derive(Clone, Debug)]
pub enum JobEvent<T, P = T> {
    Progress(Progress),
    /// An input that was skipped, with the reason (the job goes on).
    Problem(Problem),
    /// A line worth showing to the user.
    Log(String),
    /// A partial result, for jobs that deliver as they go (e.g. predictions batch by batch).
    Partial(P),
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
pub struct Reporter<T, P = T> {
    tx: Sender<JobEvent<T, P>>,
    started: Instant,
    eta: Arc<Mutex<StageEta>>,
    /// Called after every event, so that a window sleeping until something happens wakes up.
    waker: Option<Waker>,
}

/// Wakes whoever watches a job (the window's `request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

thread_local! {
    /// The waker that jobs spawned on this thread right now get; see [`spawn_waking`].
    static SPAWN_WAKER: std::cell::RefCell<Option<Waker>> = const { std::cell::RefCell::new(None) };
}

/// Runs `spawn` (which starts jobs, e.g. a library `spawn_*` function) so that every job it
/// starts on this thread calls `waker` whenever it reports. The library's job functions need no
/// waker parameter for this.
pub fn spawn_waking<R>(waker: Option<Waker>, spawn: impl FnOnce() -> R) -> R {
    let previous = SPAWN_WAKER.with(|w| w.replace(waker));
    let result = spawn();
    SPAWN_WAKER.with(|w| *w.borrow_mut() = previous);
    result
}

impl<T, P> Reporter<T, P> {
    pub fn new(tx: Sender<JobEvent<T, P>>) -> Self {
        Reporter {
            tx,
            started: Instant::now(),
            eta: Arc::default(),
            waker: SPAWN_WAKER.with(|w| w.borrow().clone()),
        }
    }
    fn send(&self, event: JobEvent<T, P>) {
        let _ = self.tx.send(event);
        if let Some(wake) = &self.waker {
            wake();
        }
    }
    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let eta_seconds = self
            .eta
            .lock()
            .map_or(None, |mut eta| eta.observe(stage, done, total, elapsed_s));
        self.send(JobEvent::Progress(Progress {
            stage: stage.into(),
            done,
            total,
            elapsed_s,
            eta_seconds,
        }));
    }
    pub fn problem(&self, problem: Problem) {
        self.send(JobEvent::Problem(problem));
    }
    pub fn log(&self, line: impl Into<String>) {
        self.send(JobEvent::Log(line.into()));
    }
    pub fn partial(&self, item: P) {
        self.send(JobEvent::Partial(item));
    }
    pub fn finish(&self, outcome: JobOutcome<T>) {
        self.send(JobEvent::Finished(outcome));
    }
}

/// A running job as seen by its owner.
pub struct JobHandle<T, P = T> {
    pub events: Receiver<JobEvent<T, P>>,
    pub cancel: CancelToken,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl<T, P> JobHandle<T, P> {
    /// Asks the job to stop and hands over its thread (once) for the caller to join.
    pub fn stop(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.cancel.cancel();
        self.thread.take()
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

/// A running job with the last progress it reported (what a window shows about it).
pub struct Tracked<T, P = T> {
    pub handle: JobHandle<T, P>,
    pub progress: Option<Progress>,
}

/// Everything a job sent since the last look.
pub struct Drained<T, P = T> {
    pub partials: Vec<P>,
    pub problems: Vec<Problem>,
    pub logs: Vec<String>,
    /// `Some` once the job has ended (it is then gone from the registry).
    pub outcome: Option<JobOutcome<T>>,
}

impl<T, P> Default for Drained<T, P> {
    fn default() -> Self {
        Drained {
            partials: vec![],
            problems: vec![],
            logs: vec![],
            outcome: None,
        }
    }
}

impl<T, P> Drained<T, P> {
    /// Moves problems and log lines to the window's lists; returns the rest.
    pub fn report_to(
        self,
        problems: &mut Vec<Problem>,
        log: &mut Vec<String>,
    ) -> (Vec<P>, Option<JobOutcome<T>>) {
        problems.extend(self.problems);
        log.extend(self.logs);
        (self.partials, self.outcome)
    }
}

impl<T, P> Tracked<T, P> {
    /// Takes every pending event, keeping the latest progress.
    fn drain(&mut self) -> Drained<T, P> {
        let mut drained = Drained::default();
        while let Ok(ev) = self.handle.events.try_recv() {
            match ev {
                JobEvent::Progress(p) => self.progress = Some(p),
                JobEvent::Problem(p) => drained.problems.push(p),
                JobEvent::Log(l) => drained.logs.push(l),
                JobEvent::Partial(item) => drained.partials.push(item),
                JobEvent::Finished(outcome) => {
                    drained.outcome = Some(outcome);
                    break;
                }
            }
        }
        drained
    }
}

/// A registered job with its types erased, so that jobs of every kind sit in one list.
trait RunningJob {
    fn token(&self) -> &CancelToken;
    fn cancel(&self);
    fn stop(&mut self) -> Option<std::thread::JoinHandle<()>>;
    fn progress(&self) -> Option<&Progress>;
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl<T: 'static, P: 'static> RunningJob for Tracked<T, P> {
    fn token(&self) -> &CancelToken {
        &self.handle.cancel
    }
    fn cancel(&self) {
        self.handle.cancel.cancel();
    }
    fn stop(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.handle.stop()
    }
    fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// What stopping every job did (when the window closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Job threads that were asked to stop.
    pub stopped: usize,
    /// Of those, how many had not ended by the deadline.
    pub still_running: usize,
}

/// Every background job of a window, each under a key `K` that says what it is for (at most one
/// job per key). The owner starts jobs here, polls each key once a frame whatever is on screen,
/// and stops them all with [`JobRegistry::shutdown`].
pub struct JobRegistry<K> {
    running: Vec<(K, Box<dyn RunningJob>)>,
    /// Threads of jobs that were replaced or cancelled and dropped: joined on shutdown.
    retired: Vec<std::thread::JoinHandle<()>>,
    waker: Option<Waker>,
    next_id: u64,
}

impl<K> Default for JobRegistry<K> {
    fn default() -> Self {
        JobRegistry {
            running: vec![],
            retired: vec![],
            waker: None,
            next_id: 0,
        }
    }
}

impl<K: PartialEq + Clone> JobRegistry<K> {
    /// Jobs started from now on call `waker` whenever they report.
    pub fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }

    pub fn has_waker(&self) -> bool {
        self.waker.is_some()
    }

    /// A number never handed out before, for keys of jobs that run side by side.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Starts the job `spawn` returns under `key`, with the registry's waker; a job already
    /// under `key` is cancelled and dropped first (its thread is joined on shutdown).
    pub fn start<T: 'static, P: 'static>(
        &mut self,
        key: K,
        spawn: impl FnOnce() -> JobHandle<T, P>,
    ) {
        self.cancel_and_forget(&key);
        let handle = spawn_waking(self.waker.clone(), spawn);
        let tracked = Tracked {
            handle,
            progress: None,
        };
        self.running.push((key, Box::new(tracked)));
    }

    pub fn is_running(&self, key: &K) -> bool {
        self.running.iter().any(|(k, _)| k == key)
    }

    /// Whether a job whose key matches `which` runs.
    pub fn any(&self, which: impl Fn(&K) -> bool) -> bool {
        self.running.iter().any(|(k, _)| which(k))
    }

    /// How many jobs run in all.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The keys of running jobs that match `which`, oldest first.
    pub fn keys(&self, which: impl Fn(&K) -> bool) -> Vec<K> {
        self.running
            .iter()
            .filter(|(k, _)| which(k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The last progress the job under `key` reported.
    pub fn progress(&self, key: &K) -> Option<&Progress> {
        let (_, job) = self.running.iter().find(|(k, _)| k == key)?;
        job.progress()
    }

    /// The cancel flag of the job under `key` (tests watch it).
    pub fn cancel_token(&self, key: &K) -> Option<CancelToken> {
        let (_, job) = self.running.iter().find(|(k, _)| k == key)?;
        Some(job.token().clone())
    }

    /// Asks the job under `key` to stop; it stays registered until it reports how it ended.
    pub fn cancel(&self, key: &K) {
        for (_, job) in self.running.iter().filter(|(k, _)| k == key) {
            job.cancel();
        }
    }

    /// Cancels the job under `key` and forgets it at once (nothing it still sends is read).
    pub fn cancel_and_forget(&mut self, key: &K) {
        let mut kept = Vec::with_capacity(self.running.len());
        for (k, mut job) in self.running.drain(..) {
            if k == *key {
                self.retired.extend(job.stop());
            } else {
                kept.push((k, job));
            }
        }
        self.running = kept;
        self.retired.retain(|t| !t.is_finished());
    }

    /// Takes what the job under `key` sent since the last poll; once it has ended, it leaves
    /// the registry. Nothing runs under `key`, or it is of other types: an empty answer.
    pub fn poll<T: 'static, P: 'static>(&mut self, key: &K) -> Drained<T, P> {
        let Some(i) = self.running.iter().position(|(k, _)| k == key) else {
            return Drained::default();
        };
        let Some(job) = self.running[i]
            .1
            .as_any_mut()
            .downcast_mut::<Tracked<T, P>>()
        else {
            debug_assert!(false, "job polled with the wrong types");
            return Drained::default();
        };
        let drained = job.drain();
        if drained.outcome.is_some() {
            let (_, mut job) = self.running.remove(i);
            self.retired.extend(job.stop());
        }
        drained
    }

    /// Cancels every job and joins their threads, waiting at most until `deadline`.
    pub fn shutdown(&mut self, deadline: Instant) -> ShutdownReport {
        let mut threads: Vec<_> = self
            .running
            .drain(..)
            .filter_map(|(_, mut job)| job.stop())
            .collect();
        threads.append(&mut self.retired);
        let stopped = threads.len();
        let still_running = join_until(threads, deadline);
        ShutdownReport {
            stopped,
            still_running,
        }
    }
}

/// How a job's work ended when it did not fail: with its result, or stopped early because its
/// [`CancelToken`] was set.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish<T> {
    Done(T),
    Cancelled,
}

/// Runs `work` on a new named thread; what it returns becomes the `Finished` event (`Err` is
/// `Failed` with the error's chain as the message, a panic is `Failed` too). `work` may also
/// deliver partial results of type `P` through its reporter as it goes. Started inside
/// [`spawn_waking`], it calls that waker after every event.
pub fn spawn_job<T, P, F>(name: &str, work: F) -> JobHandle<T, P>
where
    T: Send + 'static,
    P: Send + 'static,
    F: FnOnce(&Reporter<T, P>, &CancelToken) -> anyhow::Result<Finish<T>> + Send + 'static,
{
    let (tx, rx) = crossbeam_channel::unbounded();
    let cancel = CancelToken::default();
    let token = cancel.clone();
    let waker = SPAWN_WAKER.with(|w| w.borrow().clone());
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let reporter = Reporter {
                waker,
                ..Reporter::new(tx)
            };
            let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(&reporter, &token)
            })) {
                Ok(Ok(Finish::Done(value))) => JobOutcome::Done(value),
                Ok(Ok(Finish::Cancelled)) => JobOutcome::Cancelled,
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

/// [`spawn_job`] for work that reports nothing before its result (a file dialog, one read).
pub fn spawn_task<T, F>(name: &str, work: F) -> JobHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&CancelToken) -> anyhow::Result<Finish<T>> + Send + 'static,
{
    spawn_job(name, move |_: &Reporter<T>, cancel| work(cancel))
}

/// [`spawn_job`] for work written with `Option` for "cancelled" (`Ok(None)`), as the library's
/// long jobs (collect, build, class tools, batch attack) are.
pub fn spawn<T, F>(name: &str, work: F) -> JobHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&Reporter<T>, &CancelToken) -> anyhow::Result<Option<T>> + Send + 'static,
{
    spawn_job(name, move |reporter, cancel| {
        Ok(match work(reporter, cancel)? {
            Some(value) => Finish::Done(value),
            None => Finish::Cancelled,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{spawn_job, Finish, JobOutcome, JobRegistry, StageEta};
    use std::time::{Duration, Instant};

    /// Polls `key` until its job ends; returns its partials and outcome.
    fn finish<T: 'static, P: 'static>(
        jobs: &mut JobRegistry<&'static str>,
        key: &'static str,
    ) -> (Vec<P>, JobOutcome<T>) {
        let start = Instant::now();
        let mut partials = vec![];
        loop {
            let drained = jobs.poll::<T, P>(&key);
            partials.extend(drained.partials);
            if let Some(outcome) = drained.outcome {
                return (partials, outcome);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{key} never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_registered_job_delivers_partials_then_its_outcome_and_leaves() {
        let mut jobs = JobRegistry::default();
        jobs.start("count", || {
            spawn_job("count", |reporter, _| {
                for i in 0..3u32 {
                    reporter.partial(i);
                }
                Ok(Finish::Done("done"))
            })
        });
        assert!(jobs.is_running(&"count"));
        let (partials, outcome) = finish::<&str, u32>(&mut jobs, "count");
        assert_eq!(partials, vec![0, 1, 2]);
        assert!(matches!(outcome, JobOutcome::Done("done")));
        assert!(!jobs.is_running(&"count") && jobs.is_empty());
    }

    #[test]
    fn cancel_and_failure_are_outcomes_not_values() {
        let mut jobs = JobRegistry::default();
        jobs.start("wait", || {
            spawn_job("wait", |_: &super::Reporter<()>, cancel| {
                while !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(Finish::Cancelled)
            })
        });
        jobs.start("fail", || {
            spawn_job("fail", |_: &super::Reporter<()>, _| {
                anyhow::bail!("no such file")
            })
        });
        jobs.cancel(&"wait");
        assert!(
            jobs.is_running(&"wait"),
            "a cancelled job stays until it says so"
        );
        assert!(matches!(
            finish::<(), ()>(&mut jobs, "wait").1,
            JobOutcome::Cancelled
        ));
        match finish::<(), ()>(&mut jobs, "fail").1 {
            JobOutcome::Failed(e) => assert!(e.contains("no such file"), "{e}"),
            _ => panic!("the failure was not reported"),
        }
    }

    #[test]
    fn a_new_job_replaces_the_old_one_and_shutdown_joins_them_all() {
        let mut jobs = JobRegistry::default();
        let endless = || {
            spawn_job("endless", |_: &super::Reporter<()>, cancel| {
                while !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(Finish::Cancelled)
            })
        };
        jobs.start("a", endless);
        let first = jobs.cancel_token(&"a").unwrap();
        jobs.start("a", endless);
        assert!(first.is_cancelled(), "the replaced job was not cancelled");
        assert_eq!(jobs.len(), 1);
        jobs.start("b", endless);
        let report = jobs.shutdown(Instant::now() + Duration::from_secs(10));
        // Both running jobs, and the replaced one's thread unless it had already ended.
        assert!((2..=3).contains(&report.stopped), "{report:?}");
        assert_eq!(report.still_running, 0, "{report:?}");
        assert!(jobs.is_empty());
    }

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
