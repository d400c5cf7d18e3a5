//! The "Build atlas" job of the app: collection (resumes a saved run) and then one atlas build per
//! chosen layer, each a job of its own whose events are forwarded, so the UI sees one job with
//! one progress bar and one cancel button. Every stage is cached on disk by the jobs it runs,
//! so a second "Build atlas" with the same settings finishes at once.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::atlas::{spawn_build, BuildConfig, BuildEvent};
use crate::collect::{spawn_collect, CollectConfig, CollectSummary};
use crate::jobs::{self, CancelToken, Finish, JobEvent, JobHandle, JobOutcome, Reporter};
use crate::layout::{LayoutMethod, UmapParams};
use crate::render::RenderSettings;

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub collect: CollectConfig,
    pub render: RenderSettings,
}

#[derive(Clone, Debug)]
pub enum PipelineEvent {
    Collected(CollectSummary),
    /// An event of the build of `layer`'s atlas in `dir`.
    Build {
        layer: String,
        dir: PathBuf,
        event: BuildEvent,
    },
}

/// Where the atlas of `layer` lives inside a run folder.
pub fn atlas_dir(run: &Path, layer: &str) -> PathBuf {
    run.join("atlases").join(layer)
}

/// Grid sizes for `points` vectors: the published 20/40/80/160 (spec §3.2), keeping only
/// levels with at least four points per cell on average, so small folders do not get levels of
/// near-empty cells; a folder too small even for 20×20 gets one coarser grid.
pub fn grids_for(points: usize) -> Vec<usize> {
    let max = (points as f64 / 4.0).sqrt();
    let grids: Vec<usize> = [20, 40, 80, 160]
        .into_iter()
        .filter(|&g| g as f64 <= max)
        .collect();
    if grids.is_empty() {
        vec![(max.floor() as usize).clamp(2, 19)]
    } else {
        grids
    }
}

/// The minimum count per cell: the spec's 5 (§3.1) for real datasets, less for small folders
/// where every cell holds only a handful of points.
pub fn min_count_for(points: usize) -> usize {
    (points / 800).clamp(2, 5)
}

/// UMAP with the spec's defaults, neighbours capped for tiny sets (a neighbour count close to
/// the number of points makes every point everyone's neighbour).
pub fn layout_for(points: usize) -> LayoutMethod {
    let mut p = UmapParams::default();
    p.n_neighbors = p.n_neighbors.min((points / 4).max(5));
    LayoutMethod::Umap(p)
}

/// Collects, then builds every collected layer's atlas. Everything it has to say arrives as
/// partial events; it ends with `Done(())`.
pub fn spawn_pipeline(cfg: PipelineConfig) -> JobHandle<(), PipelineEvent> {
    jobs::spawn_job("build-atlas", move |reporter, cancel| {
        let Finish::Done(summary) = forward(
            spawn_collect(cfg.collect.clone()),
            reporter,
            cancel,
            |s| format!("collect: {s}"),
            |_| None,
        )?
        else {
            return Ok(Finish::Cancelled);
        };
        reporter.partial(PipelineEvent::Collected(summary.clone()));
        let run = cfg.collect.out.clone();
        for layer in &summary.manifest.layers {
            let dir = atlas_dir(&run, &layer.name);
            let build = BuildConfig {
                run: run.clone(),
                layer: layer.name.clone(),
                out: dir.clone(),
                model: Some(cfg.collect.model.clone()),
                layout: layout_for(layer.rows),
                grids: grids_for(layer.rows),
                min_count: min_count_for(layer.rows),
                render: cfg.render.clone(),
                icon_levels: None,
                max_points: None,
                overview_levels: true,
            };
            let name = layer.name.clone();
            let wrap = |e: BuildEvent| PipelineEvent::Build {
                layer: name.clone(),
                dir: dir.clone(),
                event: e,
            };
            let label = layer.name.clone();
            let Finish::Done(done) = forward(
                spawn_build(build),
                reporter,
                cancel,
                |s| format!("{label}: {s}"),
                |e| Some(wrap(e)),
            )?
            else {
                return Ok(Finish::Cancelled);
            };
            // The build's end is announced too, so the UI reads every layer's atlas again.
            reporter.partial(wrap(done));
        }
        Ok(Finish::Done(()))
    })
}

/// Runs a sub-job to its end, passing its progress (renamed by `stage`), problems, log lines and
/// partial results (mapped by `partial`) to `reporter`, and a cancel of the pipeline to it.
fn forward<T, U>(
    job: JobHandle<T>,
    reporter: &Reporter<(), U>,
    cancel: &CancelToken,
    stage: impl Fn(&str) -> String,
    partial: impl Fn(T) -> Option<U>,
) -> Result<Finish<T>> {
    loop {
        if cancel.is_cancelled() {
            job.cancel.cancel();
        }
        match job.events.recv_timeout(Duration::from_millis(100)) {
            Ok(JobEvent::Progress(p)) => reporter.progress(&stage(&p.stage), p.done, p.total),
            Ok(JobEvent::Problem(p)) => reporter.problem(p),
            Ok(JobEvent::Log(l)) => reporter.log(l),
            Ok(JobEvent::Partial(item)) => {
                if let Some(u) = partial(item) {
                    reporter.partial(u);
                }
            }
            Ok(JobEvent::Finished(JobOutcome::Done(v))) => return Ok(Finish::Done(v)),
            Ok(JobEvent::Finished(JobOutcome::Cancelled)) => return Ok(Finish::Cancelled),
            Ok(JobEvent::Finished(JobOutcome::Failed(e))) => bail!(e),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                bail!("a background job ended without a result")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_follow_the_number_of_points() {
        assert_eq!(grids_for(100), vec![5]);
        assert_eq!(grids_for(400), vec![10]);
        assert_eq!(grids_for(4_000), vec![20]);
        assert_eq!(grids_for(10_000), vec![20, 40]);
        assert_eq!(grids_for(1_000_000), vec![20, 40, 80, 160]);
        assert_eq!(min_count_for(400), 2);
        assert_eq!(min_count_for(100_000), 5);
    }
}
