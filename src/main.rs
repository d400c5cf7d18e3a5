//! `atlas`: the desktop app (default) and the headless pipeline commands.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use atlas::collect::attribution::AttributionMethod;
use atlas::collect::{spawn_collect, CollectConfig};
use atlas::data::{scan_folder, ImageEntry, Preprocess};
use atlas::jobs::{JobEvent, JobOutcome};
use atlas::model::AtlasModel;
use atlas::store::npy::Dtype;
use atlas::{classify, defaults};

#[derive(Parser)]
#[command(
    name = "atlas",
    version,
    about = "Activation atlases of your own image classifier and images"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default when no command is given).
    App {
        /// Image folder to open (default: the bundled photographs).
        #[arg(long)]
        images: Option<PathBuf>,
        /// Atlas model (.pt with its .json sidecar; default: EfficientNet-Lite0).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Collect activation vectors and their attributions into a run folder (resumable).
    Collect {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        images: PathBuf,
        /// Comma-separated layer names, or "all".
        #[arg(long, default_value = "all")]
        layers: String,
        #[arg(long)]
        out: PathBuf,
        /// Random positions per image and layer.
        #[arg(long, default_value_t = 1)]
        samples: u32,
        /// Cells kept free at each border of a layer's grid.
        #[arg(long, default_value_t = 1)]
        margin: i64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Images per saved chunk (the most work a kill can lose).
        #[arg(long, default_value_t = 512)]
        chunk: usize,
        /// Store activations as float16 (half the disk).
        #[arg(long)]
        f16: bool,
        /// Use only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// Image decoding threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// How attributions are computed: auto (the model's forward-mode method when it has one),
        /// forward-mode, or double-backward.
        #[arg(long, default_value = "auto")]
        attribution: String,
    },
    /// Print the top-k classes of images (files or folders); with labelled folders, the accuracy.
    Classify {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Print only the accuracy summary.
        #[arg(long)]
        quiet: bool,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Lay out the rows of an n×d .npy in 2-D (raw coordinates, n×2 .npy).
    Layout {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Neighbours per point (spec default 50).
        #[arg(long, default_value_t = 50)]
        neighbors: usize,
        #[arg(long, default_value_t = 0.05)]
        min_dist: f32,
        /// SGD epochs (default: umap-learn's rule, 500 up to 10k points, else 200).
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::App {
        images: None,
        model: None,
    }) {
        Command::App { images, model } => atlas::app::run(
            model.unwrap_or_else(defaults::default_model),
            images.unwrap_or_else(defaults::default_images),
        ),
        Command::Collect {
            model,
            images,
            layers,
            out,
            samples,
            margin,
            seed,
            batch,
            chunk,
            f16,
            limit,
            workers,
            attribution,
        } => {
            let attribution = match attribution.as_str() {
                "auto" => AttributionMethod::Auto,
                "forward-mode" => AttributionMethod::ForwardMode,
                "double-backward" => AttributionMethod::DoubleBackward,
                other => {
                    eprintln!("error: --attribution must be auto, forward-mode or double-backward, not {other:?}");
                    std::process::exit(2);
                }
            };
            let layers = if layers == "all" {
                vec![]
            } else {
                layers.split(',').map(|s| s.trim().to_string()).collect()
            };
            run_collect(CollectConfig {
                model: model.unwrap_or_else(defaults::default_model),
                images,
                layers,
                out,
                samples_per_image: samples,
                margin,
                seed,
                batch_size: batch,
                chunk_images: chunk,
                acts_dtype: if f16 { Dtype::F16 } else { Dtype::F32 },
                preprocess: Preprocess::Squash,
                decode_workers: workers,
                limit,
                attribution,
            })
        }
        Command::Classify {
            model,
            top,
            batch,
            quiet,
            inputs,
        } => run_classify(
            &model.unwrap_or_else(defaults::default_model),
            top,
            batch,
            quiet,
            &inputs,
        ),
        Command::Layout {
            input,
            output,
            neighbors,
            min_dist,
            epochs,
            seed,
        } => run_layout(
            &input,
            &output,
            &atlas::layout::LayoutMethod::Umap(atlas::layout::UmapParams {
                n_neighbors: neighbors,
                min_dist,
                n_epochs: epochs,
                seed,
                ..Default::default()
            }),
        ),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, ETA {eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    pb
}

fn run_collect(cfg: CollectConfig) -> Result<()> {
    let out = cfg.out.clone();
    let job = spawn_collect(cfg);
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
                pb.println(format!("skipped {}: {}", p.path.display(), p.reason));
            }
            Ok(JobEvent::Log(line)) => pb.println(line),
            Ok(JobEvent::Partial(_)) => {}
            Ok(JobEvent::Finished(outcome)) => {
                pb.finish_and_clear();
                return match outcome {
                    JobOutcome::Done(summary) => {
                        let m = &summary.manifest;
                        println!(
                            "run complete: {} images ({} processed now in {:.1} s), {} problems (see {}/problems.csv)",
                            m.images_done,
                            summary.images_processed_now,
                            summary.seconds,
                            m.problems.max(problems),
                            out.display()
                        );
                        for l in &m.layers {
                            println!(
                                "  {:<16} {:>7} rows x {:>5} channels  {}/{}",
                                l.name,
                                l.rows,
                                l.channels,
                                out.display(),
                                l.dir
                            );
                        }
                        Ok(())
                    }
                    JobOutcome::Cancelled => bail!("cancelled; rerun the same command to resume"),
                    JobOutcome::Failed(e) => bail!("{e}"),
                };
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                bail!("the collection stopped unexpectedly")
            }
        }
    }
}

fn run_layout(
    input: &std::path::Path,
    output: &std::path::Path,
    method: &atlas::layout::LayoutMethod,
) -> Result<()> {
    let start = std::time::Instant::now();
    let pb = bar(1000);
    let mut stage = String::new();
    let rows = atlas::layout::layout_file(
        input,
        output,
        method,
        &mut |s, f| {
            if s != stage {
                stage = s.to_string();
                pb.set_message(stage.clone());
            }
            pb.set_position((f * 1000.0) as u64);
        },
        &|| false,
    )?
    .context("layout cancelled")?;
    pb.finish_and_clear();
    println!(
        "laid out {rows} rows in {:.2} s -> {}",
        start.elapsed().as_secs_f64(),
        output.display()
    );
    Ok(())
}

fn run_classify(
    model_path: &std::path::Path,
    top: usize,
    batch: usize,
    quiet: bool,
    inputs: &[PathBuf],
) -> Result<()> {
    let model = AtlasModel::load(model_path, atlas::model::default_device())?;
    let mut entries = vec![];
    for input in inputs {
        if input.is_dir() {
            let scan = scan_folder(input)?;
            for p in &scan.problems {
                eprintln!("skipped {}: {}", p.path.display(), p.reason);
            }
            entries.extend(scan.images);
        } else {
            entries.push(ImageEntry {
                path: input.clone(),
                label: None,
            });
        }
    }
    if entries.is_empty() {
        bail!("no images to classify");
    }
    let pb = bar(entries.len() as u64);
    pb.set_message("classifying");
    let results = classify::classify(&model, &entries, top, batch, 2, |d, _| {
        pb.set_position(d as u64)
    })
    .context("classifying")?;
    pb.finish_and_clear();
    let names = &model.info.classes;
    for r in &results {
        match &r.top {
            Ok(t) if !quiet => {
                let cells: Vec<String> = t
                    .iter()
                    .map(|(c, p)| format!("{} {:.2}%", names[*c].name, p * 100.0))
                    .collect();
                println!("{}\t{}", r.path.display(), cells.join(", "));
            }
            Ok(_) => {}
            Err(e) => eprintln!("skipped {}: {e}", r.path.display()),
        }
    }
    let (correct, labelled) = classify::accuracy(&results);
    if labelled > 0 {
        println!(
            "top-1 accuracy: {correct}/{labelled} = {:.2}%",
            100.0 * correct as f64 / labelled as f64
        );
    }
    Ok(())
}
