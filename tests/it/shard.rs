//! Sharded collection: `atlas collect --shard i/N` in 2 and in 4 shards, joined by `atlas merge`,
//! writes every file of the unsharded run byte for byte; a killed shard resumes on its own; the
//! merge refuses shards that do not belong together; `deploy/local-shards.sh` runs the shards
//! as concurrent processes, then merge and build.
//!
//! Everything runs on the CPU, where the computation is deterministic (as in `collect_resume`),
//! and with one libtorch thread: its reductions are split by thread, so runs with different
//! thread counts differ in the last bits (a shard on a node with other cores than the unsharded
//! run's would too). One thread also keeps the test quick on a loaded machine, where spinning
//! OpenMP threads of concurrent processes made a 10-image collection ten times slower.
//! The first 10 bundled images in chunks of 2 give 5 chunks, which 2 and 4 shards split
//! unevenly (2 + 3 and 1 + 1 + 1 + 2 chunks).
use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use atlas::collect::run_folder::RunFolder;

const LAYERS: &str = "stage3,head";
/// The collection flags every run here shares (the deploy script gets them as COLLECT_ARGS).
const COLLECT_ARGS: [(&str, &str); 6] = [
    ("--layers", LAYERS),
    ("--batch", "2"),
    ("--chunk", "2"),
    ("--samples", "2"),
    ("--seed", "11"),
    ("--limit", "10"),
];
const IMAGES: usize = 10;
const CHUNK: usize = 2;
const CHUNKS: usize = IMAGES.div_ceil(CHUNK);

fn atlas() -> Command {
    let mut cmd = Command::new(common::atlas_bin());
    cmd.env("ATLAS_DEVICE", "cpu").env("OMP_NUM_THREADS", "1");
    cmd
}

/// `atlas collect` of the bundled images with [`COLLECT_ARGS`], where `flags` (flag, value)
/// replace the value of a flag there or are added.
fn collect_cmd(out: &Path, flags: &[(&str, &str)]) -> Command {
    let mut args = COLLECT_ARGS.to_vec();
    for &(flag, value) in flags {
        match args.iter_mut().find(|(f, _)| *f == flag) {
            Some(arg) => arg.1 = value,
            None => args.push((flag, value)),
        }
    }
    let mut cmd = common::collect_bundled(out);
    cmd.env("OMP_NUM_THREADS", "1")
        .args(args.iter().flat_map(|&(flag, value)| [flag, value]));
    cmd
}

/// The flags as one line, "--flag value --flag value".
fn flags_line(flags: &[(&str, &str)]) -> String {
    let words: Vec<&str> = flags.iter().flat_map(|&(f, v)| [f, v]).collect();
    words.join(" ")
}

fn merge_cmd(out: &Path, shards: &[PathBuf]) -> Command {
    let mut cmd = atlas();
    cmd.arg("merge").arg("--out").arg(out).args(shards);
    cmd
}

/// Runs `cmd`, asserts it succeeded and returns its stdout.
fn succeed(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd`, asserts it failed with an error (exit code 1) and returns its stderr.
fn fail(mut cmd: Command) -> String {
    let out: Output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{cmd:?} did not fail: {stderr}");
    stderr
}

/// The unsharded run, collected once per test process.
fn unsharded() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = common::bundled::process_dir().join("shard-unsharded-run");
        succeed(collect_cmd(&run, &[]));
        run
    })
}

/// Collects shards `0/count` … of the bundled images into `dir/shard-i`, one after the other.
fn collect_shards(dir: &Path, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let shard = dir.join(format!("shard-{i}"));
            succeed(collect_cmd(&shard, &[("--shard", &format!("{i}/{count}"))]));
            shard
        })
        .collect()
}

/// Every file under `root` (relative path → bytes).
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The two folders hold the same files with the same bytes.
fn assert_same_files(want: &Path, got: &Path) {
    let (want, got) = (files(want), files(got));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the merged run has other files than the unsharded one"
    );
    for (name, bytes) in &want {
        assert!(
            *bytes == got[name],
            "{} differs from the unsharded run's",
            name.display()
        );
    }
}

/// The files of a complete run of both layers, with real content (so an empty run cannot pass).
fn assert_is_full_run(run: &Path) {
    let names: Vec<String> = files(run)
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for layer in LAYERS.split(',') {
        for matrix in ["acts.npy", "attr.npy"] {
            let path = run.join("layers").join(layer).join(matrix);
            let len = std::fs::metadata(&path).unwrap().len();
            assert!(len > 1000, "{} is too small to be real", path.display());
        }
    }
    for table in [
        "run.json",
        "images.csv",
        "scan-problems.csv",
        "provenance.csv",
        "predictions.csv",
        "problems.csv",
    ] {
        assert!(
            names.contains(&table.to_string()),
            "{table} is missing: {names:?}"
        );
    }
    let provenance = std::fs::read_to_string(run.join("provenance.csv")).unwrap();
    assert_eq!(
        provenance.lines().count() - 1,
        IMAGES * 2 * 2,
        "2 layers x 2 samples"
    );
}

/// Images in chunk `chunk` of the bundled images.
fn chunk_images(chunk: usize) -> usize {
    (IMAGES - chunk * CHUNK).min(CHUNK)
}

#[test]
fn merging_2_and_4_shards_equals_the_unsharded_run_byte_for_byte() {
    let started = std::time::Instant::now();
    let full = unsharded();
    assert_is_full_run(full);
    let dir = common::scratch("shards");
    for count in [2, 4] {
        let shards = collect_shards(&dir.join(format!("of-{count}")), count);
        // Each shard collected only its part: the chunks of its range, no final files.
        let mut collected = 0;
        for (i, shard) in shards.iter().enumerate() {
            let saved = RunFolder::new(shard).saved_chunks().unwrap();
            let manifest = RunFolder::new(shard).read_manifest().unwrap().unwrap();
            assert_eq!(manifest.status, "shard-complete");
            assert_eq!(manifest.shard.unwrap().to_string(), format!("{i}/{count}"));
            assert!(!shard.join("provenance.csv").exists());
            collected += saved.len();
            assert!(
                saved.len() < CHUNKS,
                "shard {i}/{count} has every chunk: {saved:?}"
            );
        }
        assert_eq!(collected, CHUNKS, "the shards' chunks add up to the run's");
        let merged = dir.join(format!("merged-{count}"));
        let stdout = succeed(merge_cmd(&merged, &shards));
        assert!(
            stdout.contains(&format!("merged {count} shards")),
            "{stdout}"
        );
        assert_same_files(full, &merged);
    }
    println!("2 and 4 shards: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_killed_shard_resumes_and_merges_to_the_unsharded_run() {
    let dir = common::scratch("shard-kill");
    let shards = collect_shards(&dir, 2);
    // What a kill while shard 1/2 saves its last chunk leaves (see `RunFolder::save_chunk`):
    // the manifest as the shard started it, the earlier chunks, and a half-written temporary
    // chunk folder instead of the last one.
    let folder = RunFolder::new(&shards[1]);
    let mut manifest = folder.read_manifest().unwrap().unwrap();
    manifest.status = "collecting".into();
    manifest.layers.clear();
    manifest.images_done = 0;
    folder.write_manifest(&manifest).unwrap();
    let last = *folder.saved_chunks().unwrap().last().unwrap();
    assert_eq!(last, CHUNKS - 1);
    let half = shards[1].join("parts").join(format!("tmp-{last:06}-4242"));
    std::fs::rename(folder.chunk_dir(last), &half).unwrap();
    std::fs::write(half.join("0.acts.npy"), b"torn").unwrap();

    let merged = dir.join("merged");
    let refused = fail(merge_cmd(&merged, &shards));
    assert!(
        refused.contains("shard 1/2")
            && refused.contains("is incomplete (2 of its 3 chunks saved)"),
        "{refused}"
    );
    assert!(!merged.join("run.json").exists());

    let stdout = succeed(collect_cmd(&shards[1], &[("--shard", "1/2")]));
    let processed_now = format!("({} processed now", chunk_images(last));
    assert!(
        stdout.contains(&processed_now),
        "the rerun did not redo only the lost chunk: {stdout}"
    );
    assert!(!half.exists(), "the torn chunk was left behind");
    // A complete shard returns at once.
    let again = succeed(collect_cmd(&shards[1], &[("--shard", "1/2")]));
    assert!(again.contains("(0 processed now"), "{again}");

    succeed(merge_cmd(&merged, &shards));
    assert_same_files(unsharded(), &merged);
}

#[test]
fn merge_refuses_shards_that_do_not_belong_together() {
    let dir = common::scratch("shard-refuse");
    let shards = collect_shards(&dir, 2);
    let out = dir.join("merged");
    let refuse = |shards: &[PathBuf], expected: &[&str]| {
        let stderr = fail(merge_cmd(&out, shards));
        for words in expected {
            assert!(stderr.contains(words), "expected {words:?} in: {stderr}");
        }
        assert!(
            !out.join("run.json").exists(),
            "a refused merge wrote a run"
        );
    };

    // Another seed (other positions), layer and positions per image.
    let other = dir.join("other-settings");
    succeed(collect_cmd(
        &other,
        &[
            ("--shard", "1/2"),
            ("--seed", "12"),
            ("--layers", "stage4"),
            ("--samples", "1"),
        ],
    ));
    refuse(
        &[shards[0].clone(), other],
        &[
            "collected with different settings",
            "layers: [\"stage3\",\"head\"] vs [\"stage4\"]",
            "samples_per_image: 2 vs 1",
            "seed: 11 vs 12",
        ],
    );
    // Another model: shard 1/2 as if collected with a copy of the model elsewhere.
    let other_model = dir.join("other-model");
    common::copy_dir(&shards[1], &other_model);
    let folder = RunFolder::new(&other_model);
    let mut manifest = folder.read_manifest().unwrap().unwrap();
    manifest.settings.model_file = PathBuf::from("/elsewhere/model.pt");
    folder.write_manifest(&manifest).unwrap();
    refuse(
        &[shards[0].clone(), other_model],
        &["model_file: ", " vs \"/elsewhere/model.pt\""],
    );
    // Another image list (here: fewer images).
    let fewer = dir.join("fewer-images");
    succeed(collect_cmd(&fewer, &[("--shard", "1/2"), ("--limit", "8")]));
    refuse(
        &[shards[0].clone(), fewer],
        &["the shards list different images"],
    );
    // A missing, a duplicated shard, a shard of another count, a whole run.
    refuse(&shards[..1], &["missing shard 1/2"]);
    refuse(
        &[shards[0].clone(), shards[0].clone()],
        &["shard 0/2 is given twice"],
    );
    let of_3 = dir.join("of-3");
    common::copy_dir(&shards[1], &of_3);
    let folder = RunFolder::new(&of_3);
    let mut manifest = folder.read_manifest().unwrap().unwrap();
    manifest.shard = Some("1/3".parse().unwrap());
    folder.write_manifest(&manifest).unwrap();
    refuse(&[shards[0].clone(), of_3], &["shard count: 2 vs 3"]);
    refuse(
        &[shards[0].clone(), unsharded().to_path_buf()],
        &["is a whole run, not a shard"],
    );

    // A shard's folder resumes only as that shard.
    let stderr = fail(collect_cmd(&shards[0], &[("--shard", "1/2")]));
    assert!(
        stderr.contains("holds shard 0/2, not shard 1/2"),
        "{stderr}"
    );
    // Shards are numbered from 0.
    let out = collect_cmd(&dir.join("bad"), &[("--shard", "2/2")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("numbered from 0"));

    // The right shards still merge.
    succeed(merge_cmd(&dir.join("merged"), &shards));
    assert_same_files(unsharded(), &dir.join("merged"));
}

#[test]
fn local_shards_script_collects_concurrently_then_merges_and_builds() {
    let work = common::scratch("shard-local");
    let script = atlas::defaults::project_dir().join("deploy/local-shards.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("ATLAS", common::atlas_bin())
        .env("ATLAS_DEVICE", "cpu")
        .env("OMP_NUM_THREADS", "1")
        .env("MODEL", common::model())
        .env("IMAGES", common::assets())
        .env("WORK", &*work)
        .env("SHARDS", "2")
        .env("COLLECT_ARGS", flags_line(&COLLECT_ARGS))
        .env("BUILD_LAYER", "stage3")
        .env(
            "BUILD_ARGS",
            "--grids 2,4 --min-count 1 --icon-levels none --neighbors 10",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy/local-shards.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_files(unsharded(), &work.join("run"));
    assert!(
        work.join("atlas").join("manifest.json").is_file(),
        "no atlas was built: {:?}",
        files(&work.join("atlas")).keys().collect::<Vec<_>>()
    );
}
