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
    /// Where the model runs: cpu, cuda or cuda:N (default: the first GPU libtorch sees, else
    /// the CPU; the ATLAS_DEVICE environment variable does the same). Every command that loads
    /// a model uses it.
    #[arg(long, global = true)]
    device: Option<String>,
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
        /// Atlas folders (from `atlas build`) to open as well; repeat for several layers.
        #[arg(long)]
        atlas: Vec<PathBuf>,
        /// An image to open on the One image page.
        #[arg(long)]
        image: Option<PathBuf>,
        /// An image to open on the Patch attack page.
        #[arg(long)]
        attack: Option<PathBuf>,
        /// Patch files for the Patch attack page's tray (repeat; the first is placed on the
        /// image).
        #[arg(long)]
        patch: Vec<PathBuf>,
        /// Do not build the project's atlas on opening (by default, when nothing else is asked
        /// for and the project has no saved atlas, the app builds one on the Atlas page).
        #[arg(long)]
        no_build: bool,
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
    /// Build an atlas from a collection run: layout, nested grids, icons (resumable).
    Build {
        /// The collection run folder (from `atlas collect`).
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        layer: String,
        /// The atlas folder to write (reruns resume from it).
        #[arg(long)]
        out: PathBuf,
        /// Default: the model the run was collected with.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Grid sizes, coarse to fine.
        #[arg(long, default_value = "20,40,80,160")]
        grids: String,
        /// Grid sizes that get icons ("all", "none" or a list).
        #[arg(long, default_value = "all")]
        icon_levels: String,
        /// Icons to make: synthetic (feature visualisations), exemplar (each cell's most typical
        /// real patch and a 2×2 mosaic of its top four; written first, no model needed) or both.
        #[arg(long, default_value = "both")]
        icons: String,
        /// Cells with fewer points are dropped.
        #[arg(long, default_value_t = 5)]
        min_count: usize,
        /// Icon preset: preview (128 steps, 1 try) or paper (1024 steps, 4 tries).
        #[arg(long, default_value = "preview")]
        preset: String,
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        tries: Option<usize>,
        /// Icons optimised together.
        #[arg(long)]
        batch: Option<usize>,
        /// Transform stack: rec, notebook or none (default: the preset's, rec).
        #[arg(long)]
        transforms: Option<String>,
        /// Objective form: notebook or clean (default: the preset's; notebook for preview and
        /// paper, clean for maco).
        #[arg(long)]
        objective: Option<String>,
        /// n in dot × cos^n (default: the preset's, 4).
        #[arg(long)]
        cossim_power: Option<f64>,
        /// Do not whiten the directions (the maco preset does not whiten anyway).
        #[arg(long)]
        no_whiten: bool,
        /// Weight of the REC stack's boundary penalty (spec §4.5: 1; default 0 = off, see
        /// RenderSettings::boundary_penalty; used with the rec stack only).
        #[arg(long, default_value_t = 0.0)]
        boundary_penalty: f64,
        /// Layout: umap (spec default 50/0.05/cosine) or tsne (perplexity 50, lr 10, cosine).
        #[arg(long, default_value = "umap")]
        layout: String,
        #[arg(long, default_value_t = 50)]
        neighbors: usize,
        #[arg(long, default_value_t = 0.05)]
        min_dist: f32,
        /// Use at most this many of the run's rows.
        #[arg(long)]
        max_points: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Add coarser overview grids while the coarsest level fills less than half of its
        /// occupied area (what the app does; the paper's grids are kept as given without it).
        #[arg(long)]
        overview_levels: bool,
    },
    /// Render feature-visualisation icons for directions of a layer (rows of an .npy, or random
    /// non-negative directions) into a folder of PNGs.
    Icons {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        layer: String,
        /// [N, C] .npy of directions (raw; whitening is not applied here).
        #[arg(long)]
        directions: Option<PathBuf>,
        /// Without --directions: this many random directions (uniform in [0,1), seeded).
        #[arg(long, default_value_t = 8)]
        random: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "preview")]
        preset: String,
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        tries: Option<usize>,
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write one level of an atlas as a PNG with class labels.
    Poster {
        #[arg(long)]
        atlas: PathBuf,
        /// Grid size of the level.
        #[arg(long, default_value_t = 20)]
        level: usize,
        #[arg(long)]
        out: PathBuf,
        /// Cell side in pixels (default: the icon size).
        #[arg(long)]
        cell_px: Option<u32>,
        #[arg(long)]
        no_labels: bool,
        /// Icon size by point density (1 = the viewer's default).
        #[arg(long, default_value_t = 1.0)]
        density: f32,
        /// Icons: synthetic, exemplar (most typical real patch), mosaic (top four patches) or
        /// both (synthetic and exemplar posters side by side).
        #[arg(long, default_value = "synthetic")]
        icons: String,
    },
    /// Lay out the rows of an n×d .npy with UMAP (n×2) or t-SNE (n×1 or n×2); raw coordinates.
    Layout {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value = "umap", value_parser = ["umap", "tsne"])]
        method: String,
        /// Output dimensions: 2, or 1 with t-SNE (the class comparison's y axis).
        #[arg(long, default_value_t = 2)]
        dims: usize,
        /// UMAP: neighbours per point (spec default 50).
        #[arg(long, default_value_t = 50)]
        neighbors: usize,
        /// UMAP only.
        #[arg(long, default_value_t = 0.05)]
        min_dist: f32,
        /// t-SNE only (spec default 50).
        #[arg(long, default_value_t = 50.0)]
        perplexity: f32,
        /// UMAP: SGD epochs (default: umap-learn's rule, 500 up to 10k points, else 200).
        /// t-SNE: iterations (default 1000, the first 250 with early exaggeration).
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Class activation atlas (spec §6): the samples of one class, laid out alone, on an 8×8
    /// grid with icons whitened by the full layer; writes an atlas folder, class_atlas.json and
    /// class_atlas.png.
    ClassAtlas {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        layer: String,
        /// Class name (case-insensitive) or index.
        #[arg(long)]
        class: String,
        /// winner (argmax of the attribution), magnitude (top N by attribution, > 0) or both.
        #[arg(long, default_value = "both")]
        filter: String,
        /// The magnitude filter's N.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        #[arg(long, default_value_t = 8)]
        grid: usize,
        /// Cells with fewer points are dropped (NB-CLS keeps n > 4).
        #[arg(long, default_value_t = 5)]
        min_count: usize,
        #[arg(long)]
        out: PathBuf,
        /// Keep rows twice when both filters pick them (the notebook's concatenation).
        #[arg(long)]
        keep_duplicates: bool,
        /// Layout: umap (20 neighbours, min_dist 0.02, cosine) or tsne (perplexity 50, lr 10).
        #[arg(long, default_value = "umap")]
        layout: String,
        #[arg(long, default_value_t = 20)]
        neighbors: usize,
        #[arg(long, default_value_t = 0.02)]
        min_dist: f32,
        /// A [C, C] whitening matrix (e.g. the layer atlas's whitening.npy); default: computed
        /// from all of the layer's rows.
        #[arg(long)]
        whitening: Option<PathBuf>,
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value = "preview")]
        preset: String,
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        tries: Option<usize>,
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Two-class comparison (spec §7): x = attribution to B − to A (÷ its 99th percentile),
    /// y = 1-D t-SNE, 10×10 icons; writes an atlas folder, comparison.json and comparison.png.
    Compare {
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        layer: String,
        /// Left class ("more A"), name or index.
        #[arg(long)]
        a: String,
        /// Right class ("more B"), name or index.
        #[arg(long)]
        b: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "both")]
        filter: String,
        #[arg(long, default_value_t = 2000)]
        n: usize,
        #[arg(long, default_value_t = 10)]
        grid: usize,
        #[arg(long, default_value_t = 5)]
        min_count: usize,
        #[arg(long)]
        keep_duplicates: bool,
        /// Also build the class atlases of A and B (OUT/class_a, OUT/class_b).
        #[arg(long)]
        with_class_atlases: bool,
        /// t-SNE iterations (the first 250 with early exaggeration).
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
        #[arg(long)]
        whitening: Option<PathBuf>,
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value = "preview")]
        preset: String,
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        tries: Option<usize>,
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Patch attack (spec §8.3): paste patches onto images of one class and count how often
    /// the top-1 flips to a target class; prints the table and writes it as CSV.
    Attack {
        #[arg(long)]
        model: Option<PathBuf>,
        /// Folder (or one file) of images of the original class.
        #[arg(long)]
        images: PathBuf,
        /// Comma-separated patch files or folders of patches.
        #[arg(long)]
        patches: String,
        /// Original class: index, synset (n01440764) or name.
        #[arg(long)]
        original: String,
        /// Target class: index, synset or name.
        #[arg(long)]
        target: String,
        /// Add the uniform-noise control patch.
        #[arg(long)]
        noise: bool,
        #[arg(long, default_value_t = 0)]
        noise_seed: u64,
        #[arg(long, default_value_t = 0.4)]
        static_ratio: f64,
        #[arg(long, default_value = "top-left")]
        static_corner: String,
        /// Comma-separated ratios of the dynamic protocol (default 0.1,0.2,…,0.8).
        #[arg(long)]
        dynamic_ratios: Option<String>,
        /// Use only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// CSV output.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rank class pairs by shared positive attribution over the cells of an atlas level.
    ClassPairs {
        #[arg(long)]
        atlas: PathBuf,
        #[arg(long, default_value_t = 20)]
        level: usize,
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Classes paired: labelled (top class of some cell), all, or a number M (the M with
        /// the most positive attribution).
        #[arg(long, default_value = "labelled")]
        classes: String,
        /// Weigh cells by their point count (mass, default) or not (mean).
        #[arg(long, default_value = "mass")]
        weighting: String,
        /// JSON output (default: ATLAS/class_pairs_G.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Some(device) = &cli.device {
        if let Err(e) = atlas::model::parse_device(device) {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
        // Read by atlas::model::default_device(), on every thread and job of this process.
        std::env::set_var("ATLAS_DEVICE", device);
    }
    let result = match cli.command.unwrap_or(Command::App {
        images: None,
        model: None,
        atlas: vec![],
        image: None,
        attack: None,
        patch: vec![],
        no_build: false,
    }) {
        Command::App {
            images,
            model,
            atlas,
            image,
            attack,
            patch,
            no_build,
        } => atlas::app::run(
            model.unwrap_or_else(defaults::default_model),
            images.unwrap_or_else(defaults::default_images),
            atlas::app::OpenAlso {
                build_atlas: !no_build && atlas.is_empty() && image.is_none() && attack.is_none(),
                atlases: atlas,
                image,
                attack,
                patches: patch,
            },
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
        Command::Build {
            run,
            layer,
            out,
            model,
            grids,
            icon_levels,
            icons,
            min_count,
            preset,
            steps,
            tries,
            batch,
            transforms,
            objective,
            cossim_power,
            no_whiten,
            boundary_penalty,
            layout,
            neighbors,
            min_dist,
            max_points,
            seed,
            overview_levels,
        } => (|| {
            // The preset's recipe, with only the flags given on the command line changed.
            let mut render = render_settings(&preset, steps, tries, batch, seed)?;
            if let Some(t) = &transforms {
                render.transforms = atlas::render::TransformStack::parse(t)?;
            }
            if let Some(form) = &objective {
                render.objective.form = atlas::render::CosineForm::parse(form)?;
            }
            if let Some(power) = cossim_power {
                render.objective.cossim_power = power;
            }
            if no_whiten {
                render.whiten = false;
            }
            if render.transforms == atlas::render::TransformStack::Rec {
                render.boundary_penalty = boundary_penalty;
            }
            let grids = parse_sizes(&grids)?;
            let icons = atlas::atlas::IconSet::parse(&icons)?;
            let icon_levels = match icon_levels.as_str() {
                "all" => None,
                "none" => Some(vec![]),
                list => Some(parse_sizes(list)?),
            };
            run_build(
                atlas::atlas::BuildConfig {
                    run,
                    layer,
                    out,
                    model,
                    layout: match layout.as_str() {
                        "umap" => atlas::layout::LayoutMethod::Umap(atlas::layout::UmapParams {
                            n_neighbors: neighbors,
                            min_dist,
                            seed,
                            ..Default::default()
                        }),
                        "tsne" => atlas::layout::LayoutMethod::Tsne(atlas::layout::TsneParams {
                            dims: 2,
                            seed,
                            ..Default::default()
                        }),
                        other => bail!("--layout must be umap or tsne, not {other:?}"),
                    },
                    grids,
                    min_count,
                    render,
                    icon_levels,
                    max_points,
                    overview_levels,
                },
                icons,
            )
        })(),
        Command::Icons {
            model,
            layer,
            directions,
            random,
            out,
            preset,
            steps,
            tries,
            batch,
            seed,
        } => (|| {
            let render = render_settings(&preset, steps, tries, batch, seed)?;
            run_icons(
                &model.unwrap_or_else(defaults::default_model),
                &layer,
                directions.as_deref(),
                random,
                &out,
                &render,
            )
        })(),
        Command::Poster {
            atlas: root,
            level,
            out,
            cell_px,
            no_labels,
            density,
            icons,
        } => (|| {
            let img = atlas::atlas::poster::render_poster_icons(
                &root,
                &atlas::atlas::poster::PosterOptions {
                    grid: level,
                    cell_px,
                    labels: !no_labels,
                    density,
                },
                atlas::atlas::poster::PosterIcons::parse(&icons)?,
            )?;
            let mut bytes = vec![];
            img.write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )?;
            atlas::store::atomic::write_bytes(&out, &bytes)?;
            println!(
                "wrote {} ({}×{} px)",
                out.display(),
                img.width(),
                img.height()
            );
            Ok(())
        })(),
        Command::Layout {
            input,
            output,
            method,
            dims,
            neighbors,
            min_dist,
            perplexity,
            epochs,
            seed,
        } => {
            use atlas::layout::{LayoutMethod, TsneParams, UmapParams};
            match (method.as_str(), dims) {
                ("umap", 2) => run_layout(
                    &input,
                    &output,
                    &LayoutMethod::Umap(UmapParams {
                        n_neighbors: neighbors,
                        min_dist,
                        n_epochs: epochs,
                        seed,
                        ..Default::default()
                    }),
                ),
                ("tsne", 1 | 2) => run_layout(
                    &input,
                    &output,
                    &LayoutMethod::Tsne(TsneParams {
                        dims,
                        perplexity,
                        n_iter: epochs.unwrap_or(1000),
                        seed,
                        ..Default::default()
                    }),
                ),
                (m, _) => Err(anyhow::anyhow!(
                    "--method {m} cannot lay out in {dims} dimensions"
                )),
            }
        }
        Command::ClassAtlas {
            run,
            layer,
            class,
            filter,
            n,
            grid,
            min_count,
            out,
            keep_duplicates,
            layout,
            neighbors,
            min_dist,
            whitening,
            model,
            preset,
            steps,
            tries,
            batch,
            seed,
        } => (|| {
            use atlas::classes::{ClassAtlasConfig, ClassFilter, Selection, WhiteningSource};
            let mut cfg = ClassAtlasConfig::new(run, &layer, &class, out);
            cfg.filter = ClassFilter::parse(&filter)?;
            cfg.n = n;
            cfg.grid = grid;
            cfg.min_count = min_count;
            cfg.selection = if keep_duplicates {
                Selection::Concat
            } else {
                Selection::Union
            };
            cfg.layout = match layout.as_str() {
                "umap" => atlas::layout::LayoutMethod::Umap(atlas::layout::UmapParams {
                    n_neighbors: neighbors,
                    min_dist,
                    seed,
                    ..Default::default()
                }),
                "tsne" => atlas::layout::LayoutMethod::Tsne(atlas::layout::TsneParams {
                    dims: 2,
                    seed,
                    ..Default::default()
                }),
                other => bail!("--layout must be umap or tsne, not {other:?}"),
            };
            cfg.render = render_settings(&preset, steps, tries, batch, seed)?;
            if let Some(w) = whitening {
                cfg.whitening = WhiteningSource::File(w);
            }
            cfg.model = model;
            run_class_job(atlas::classes::spawn_class_atlas(cfg))
        })(),
        Command::Compare {
            run,
            layer,
            a,
            b,
            out,
            filter,
            n,
            grid,
            min_count,
            keep_duplicates,
            with_class_atlases,
            iterations,
            whitening,
            model,
            preset,
            steps,
            tries,
            batch,
            seed,
        } => (|| {
            use atlas::classes::{ClassFilter, CompareConfig, Selection, WhiteningSource};
            let mut cfg = CompareConfig::new(run, &layer, &a, &b, out);
            cfg.filter = ClassFilter::parse(&filter)?;
            cfg.n = n;
            cfg.grid = grid;
            cfg.min_count = min_count;
            cfg.selection = if keep_duplicates {
                Selection::Concat
            } else {
                Selection::Union
            };
            cfg.with_class_atlases = with_class_atlases;
            cfg.tsne.n_iter = iterations;
            cfg.tsne.seed = seed;
            cfg.render = render_settings(&preset, steps, tries, batch, seed)?;
            if let Some(w) = whitening {
                cfg.whitening = WhiteningSource::File(w);
            }
            cfg.model = model;
            run_class_job(atlas::classes::spawn_compare(cfg))
        })(),
        Command::ClassPairs {
            atlas: root,
            level,
            top,
            classes,
            weighting,
            out,
        } => (|| {
            use atlas::classes::{class_pairs, PairClasses, PairWeighting};
            let weighting = match weighting.as_str() {
                "mass" => PairWeighting::Mass,
                "mean" => PairWeighting::Mean,
                other => bail!("--weighting must be mass or mean, not {other:?}"),
            };
            let result = class_pairs(&root, level, top, PairClasses::parse(&classes)?, weighting)?;
            let out = out.unwrap_or_else(|| root.join(format!("class_pairs_{level}.json")));
            atlas::store::atomic::write_bytes(
                &out,
                serde_json::to_string_pretty(&result)?.as_bytes(),
            )?;
            println!(
                "{} classes over {} cells of the {level}×{level} level ({:?} weighting):",
                result.classes_considered, result.cells, result.weighting
            );
            for (i, p) in result.pairs.iter().enumerate() {
                println!(
                    "{:>3}. {:.4}  {} ({}) — {} ({})  shared cells {}",
                    i + 1,
                    p.similarity,
                    p.name_a,
                    p.a,
                    p.name_b,
                    p.b,
                    p.shared_cells
                );
            }
            println!("wrote {}", out.display());
            Ok(())
        })(),
        Command::Attack {
            model,
            images,
            patches,
            original,
            target,
            noise,
            noise_seed,
            static_ratio,
            static_corner,
            dynamic_ratios,
            limit,
            out,
        } => (|| {
            use atlas::attack::batch::{self, BatchConfig, PatchInput};
            let model = model.unwrap_or_else(defaults::default_model);
            let info = atlas::model::Sidecar::load(&model)?;
            let patches = batch::patch_files(&patches)?;
            let mut cfg = BatchConfig::new(
                &model,
                batch::image_input(&images),
                patches.into_iter().map(PatchInput::File).collect(),
                batch::resolve_class(&info, &original)?,
                batch::resolve_class(&info, &target)?,
            );
            cfg.noise_seed = noise.then_some(noise_seed);
            cfg.static_ratio = static_ratio;
            cfg.static_corner = batch::parse_corner(&static_corner)?;
            if let Some(r) = dynamic_ratios {
                cfg.dynamic_ratios = batch::parse_ratios(&r)?;
            }
            cfg.limit = limit;
            let (table, _) = follow_job(batch::spawn_batch(cfg), "patch attack", |_, _| {})?;
            print!("{table}");
            table.write_csv(&out)?;
            println!(
                "{} composites classified in {:.1} s; wrote {}",
                table.composites,
                table.elapsed_s,
                out.display()
            );
            Ok(())
        })(),
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

/// Shows a background job's progress on a bar until it ends. Skipped inputs are printed as they
/// come; `on_partial` sees partial results. Returns the result and the number of problems.
fn follow_job<T>(
    job: atlas::jobs::JobHandle<T>,
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
                pb.println(format!("skipped {}: {}", p.path.display(), p.reason));
            }
            Ok(JobEvent::Log(line)) => pb.println(line),
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

fn run_collect(cfg: CollectConfig) -> Result<()> {
    let out = cfg.out.clone();
    let (summary, problems) = follow_job(spawn_collect(cfg), "collection", |_, _| {})?;
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

fn run_icons(
    model_path: &std::path::Path,
    layer: &str,
    directions: Option<&std::path::Path>,
    random: usize,
    out: &std::path::Path,
    render: &atlas::render::RenderSettings,
) -> Result<()> {
    let start = std::time::Instant::now();
    let model = AtlasModel::load(model_path, atlas::model::default_device())?;
    let li = model.info.layer_index(layer).with_context(|| {
        let names: Vec<&str> = model.info.layers.iter().map(|l| l.name.as_str()).collect();
        format!("the model has no layer {layer:?} (it has {names:?})")
    })?;
    let c = model.info.layers[li].channels as usize;
    let dirs: Vec<f32> = match directions {
        Some(p) => {
            let m = atlas::store::npy::read(p)?;
            if m.cols != c {
                bail!(
                    "{} has {} columns, layer {layer:?} has {c} channels",
                    p.display(),
                    m.cols
                );
            }
            m.data
        }
        None => {
            let mut rng = atlas::layout::rng::Rng::new(render.seed);
            (0..random * c).map(|_| rng.uniform() as f32).collect()
        }
    };
    let n = dirs.len() / c;
    std::fs::create_dir_all(out)?;
    let pb = bar(n as u64);
    pb.set_message("icons");
    let mut done = 0usize;
    for (b, chunk) in dirs.chunks(render.batch.max(1) * c).enumerate() {
        let rows = chunk.len() / c;
        let d = tch::Tensor::from_slice(chunk).view([rows as i64, c as i64]);
        let icons = atlas::render::render_batch(
            &model,
            li,
            &d,
            render,
            b as u64,
            &mut |f| pb.set_position((done as f32 + f * rows as f32) as u64),
            &|| false,
        )?
        .context("cancelled")?;
        for (i, img) in icons.images.iter().enumerate() {
            let path = out.join(format!("icon_{:04}.png", done + i));
            img.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        done += rows;
    }
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rendered {n} icons ({} steps, {} tries, batch {}) in {secs:.2} s: {:.4} icons/s -> {}",
        render.steps,
        render.tries,
        render.batch,
        n as f64 / secs,
        out.display()
    );
    Ok(())
}

fn parse_sizes(list: &str) -> Result<Vec<usize>> {
    list.split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&g| g > 0)
                .with_context(|| format!("{s:?} is not a grid size (a positive integer)"))
        })
        .collect()
}

fn run_build(cfg: atlas::atlas::BuildConfig, icons: atlas::atlas::IconSet) -> Result<()> {
    use atlas::atlas::BuildEvent;
    let out = cfg.out.clone();
    let job = atlas::atlas::spawn_build_icons(cfg, icons);
    let mut levels_printed = false;
    let (result, _) = follow_job(job, "build", |pb, event| {
        // Sent again once exemplar sheets are written: print the levels once.
        if let (BuildEvent::LevelsReady(m), false) = (event, levels_printed) {
            levels_printed = true;
            for l in &m.levels {
                pb.println(format!("level {0}×{0}: {1} cells", l.grid, l.cells));
            }
        }
    })?;
    let BuildEvent::Finished {
        manifest,
        icons_rendered,
        seconds,
    } = result
    else {
        bail!("the build ended unexpectedly");
    };
    println!(
        "atlas complete: {} points of layer {}, {} icons rendered now, {seconds:.1} s -> {}",
        manifest.points,
        manifest.layer,
        icons_rendered,
        out.display()
    );
    Ok(())
}

/// Follows a class-atlas or comparison job and prints where its files are.
fn run_class_job(job: atlas::jobs::JobHandle<atlas::classes::ClassEvent>) -> Result<()> {
    use atlas::atlas::BuildEvent;
    use atlas::classes::ClassEvent;
    let (result, _) = follow_job(job, "class job", |pb, event| match event {
        ClassEvent::Selected { what, rows } => pb.println(format!("{what}: {rows} samples")),
        ClassEvent::Build {
            part,
            event: BuildEvent::LevelsReady(m),
        } => {
            for l in &m.levels {
                pb.println(format!("{part}: {0}×{0} grid, {1} cells", l.grid, l.cells));
            }
        }
        ClassEvent::ClassAtlasDone(r) => pb.println(format!(
            "class atlas of {} -> {}",
            r.info.class.name,
            r.out.display()
        )),
        _ => {}
    })?;
    match result {
        ClassEvent::ClassAtlasDone(r) => {
            println!(
                "class atlas of {:?} ({} filter): {} samples ({} winners, {} by magnitude), {} \
                 cells, {} icons rendered now, {:.1} s -> {}",
                r.info.class.name,
                r.info.filter.name(),
                r.info.rows.len(),
                r.info.winner_count,
                r.info.magnitude_count,
                r.manifest.levels.first().map(|l| l.cells).unwrap_or(0),
                r.icons_rendered,
                r.seconds,
                r.out.display()
            );
            println!("wrote {}", r.out.join("class_atlas.json").display());
            if let Some(p) = r.poster {
                println!("wrote {}", p.display());
            }
        }
        ClassEvent::ComparisonDone(r) => {
            println!(
                "{} vs {}: {} samples ({} and {}), p{} of |d| = {:.4}, {} cells, {} icons \
                 rendered now, {:.1} s -> {}",
                r.info.a.name,
                r.info.b.name,
                r.info.rows.len(),
                r.info.a_count,
                r.info.b_count,
                r.info.percentile,
                r.info.scale,
                r.info.cells.len(),
                r.icons_rendered,
                r.seconds,
                r.out.display()
            );
            println!("wrote {}", r.out.join("comparison.json").display());
            if let Some(p) = r.poster {
                println!("wrote {}", p.display());
            }
        }
        _ => bail!("the job ended unexpectedly"),
    }
    Ok(())
}

/// A render preset with the overrides given on the command line.
fn render_settings(
    preset: &str,
    steps: Option<usize>,
    tries: Option<usize>,
    batch: Option<usize>,
    seed: u64,
) -> Result<atlas::render::RenderSettings> {
    let mut render = atlas::render::RenderSettings::preset(preset)?;
    render.steps = steps.unwrap_or(render.steps);
    render.tries = tries.unwrap_or(render.tries);
    render.batch = batch.unwrap_or(render.batch);
    render.seed = seed;
    Ok(render)
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
