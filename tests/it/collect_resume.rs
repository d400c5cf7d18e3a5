//! Faults: a collection killed with SIGKILL (or cancelled) and rerun yields exactly the rows of an
//! uninterrupted run: nothing lost, nothing duplicated.
use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use atlas::collect::{collect, spawn_collect, CollectConfig};
use atlas::jobs::{JobEvent, JobOutcome, Reporter};

const LAYERS: &str = "stage3,head";

fn collect_cmd(out: &Path) -> Command {
    let mut cmd = common::collect_bundled(out);
    cmd.args([
        "--layers",
        LAYERS,
        "--batch",
        "2",
        "--chunk",
        "2",
        "--samples",
        "2",
        "--seed",
        "11",
    ]);
    cmd
}

fn finished_chunks(run: &Path) -> usize {
    std::fs::read_dir(run.join("parts"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().len() == 6)
                .count()
        })
        .unwrap_or(0)
}

fn assert_same_run(a: &Path, b: &Path) {
    for layer in LAYERS.split(',') {
        for file in ["acts.npy", "attr.npy"] {
            let fa = std::fs::read(a.join("layers").join(layer).join(file)).unwrap();
            let fb = std::fs::read(b.join("layers").join(layer).join(file)).unwrap();
            assert!(fa.len() > 1000, "{layer}/{file} is too small to be real");
            assert!(
                fa == fb,
                "{layer}/{file} differs between the interrupted and the uninterrupted run"
            );
        }
    }
    for file in ["provenance.csv", "predictions.csv"] {
        let ta = std::fs::read_to_string(a.join(file)).unwrap();
        let tb = std::fs::read_to_string(b.join(file)).unwrap();
        assert_eq!(ta, tb, "{file} differs");
    }
}

#[test]
fn kill_9_then_rerun_equals_uninterrupted_run() {
    let dir = common::scratch("kill9");
    let (full, killed) = (dir.join("full"), dir.join("killed"));
    assert!(collect_cmd(&full).status().unwrap().success());
    let rows = std::fs::read_to_string(full.join("provenance.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    let images = common::image_files(&common::assets()).len();
    assert_eq!(rows, images * 2 * 2, "2 layers x 2 samples per image");

    let mut child = collect_cmd(&killed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while finished_chunks(&killed) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no chunk saved in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before we could kill it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("layers").exists(), "killed before merging");
    let saved = finished_chunks(&killed);

    let out = collect_cmd(&killed).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let processed_now: usize = stdout
        .split("(")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect(&stdout);
    assert!(
        processed_now <= images - saved * 2,
        "the rerun redid saved chunks: {stdout}"
    );
    assert_same_run(&full, &killed);
}

#[test]
fn cancel_then_resume_equals_uninterrupted_run() {
    let dir = common::scratch("cancel");
    let config = |out: &Path| CollectConfig {
        model: common::model(),
        images: common::assets(),
        layers: LAYERS.split(',').map(String::from).collect(),
        out: out.to_path_buf(),
        samples_per_image: 2,
        seed: 11,
        batch_size: 2,
        chunk_images: 2,
        ..Default::default()
    };
    let full = dir.join("full");
    let (tx, _rx) = crossbeam_channel::unbounded();
    let token = atlas::jobs::CancelToken::default();
    collect(&config(&full), &Reporter::new(tx), &token)
        .unwrap()
        .expect("not cancelled");

    let resumed = dir.join("resumed");
    let job = spawn_collect(config(&resumed));
    let mut outcome = None;
    for ev in job.events.iter() {
        match ev {
            JobEvent::Progress(p) if p.stage == "collecting" && p.done >= 4 => job.cancel.cancel(),
            JobEvent::Finished(o) => {
                outcome = Some(o);
                break;
            }
            _ => {}
        }
    }
    assert!(
        matches!(outcome, Some(JobOutcome::Cancelled)),
        "the job did not stop on cancel"
    );
    let job = spawn_collect(config(&resumed));
    let done = job.events.iter().find_map(|ev| match ev {
        JobEvent::Finished(o) => Some(o),
        _ => None,
    });
    assert!(matches!(done, Some(JobOutcome::Done(_))));
    assert_same_run(&full, &resumed);
}
