//! Progress bars on the terminal, and following a background job to its end.
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use atlas::jobs::{JobEvent, JobHandle, JobOutcome};

/// A bar of `total` steps with the stage name on its left.
pub fn bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, ETA {eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    pb
}

/// Prints a line above the bar; to stderr when the bar is hidden (stderr is not a terminal), where
/// indicatif would drop it, so that a job's log reaches a log file.
fn print_line(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

/// Shows a background job's progress on a bar until it ends. Skipped inputs are printed as they
/// come; `on_partial` sees partial results. Returns the result and the number of problems.
/// `what` names the job if it vanishes without a result.
pub fn follow_job<T>(
    job: JobHandle<T>,
    what: &str,
    mut on_partial: impl FnMut(&ProgressBar, T),
) -> Result<(T, usize)> {
    let pb = bar(1);
    let mut problems = 0usize;
    loop {
        match job.events.recv_timeout(Duration::from_millis(200)) {
            Ok(JobEvent::Progress(p)) => {
                pb.set_message(p.stage.clone());
                pb.set_length(p.total);
                pb.set_position(p.done);
            }
            Ok(JobEvent::Problem(p)) => {
                problems += 1;
                print_line(&pb, format!("skipped {}: {}", p.path.display(), p.reason));
            }
            Ok(JobEvent::Log(line)) => print_line(&pb, line),
            Ok(JobEvent::Partial(item)) => on_partial(&pb, item),
            Ok(JobEvent::Finished(outcome)) => {
                pb.finish_and_clear();
                return match outcome {
                    JobOutcome::Done(value) => Ok((value, problems)),
                    JobOutcome::Cancelled => bail!("cancelled; rerun the same command to resume"),
                    JobOutcome::Failed(e) => bail!("{e}"),
                };
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                bail!("the {what} stopped unexpectedly")
            }
        }
    }
}
