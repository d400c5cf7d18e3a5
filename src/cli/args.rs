//! Flags that several commands share (`#[command(flatten)]`) and the enums behind them.
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use atlas::defaults;
use atlas::layout::{LayoutMethod, TsneParams, UmapParams};
use atlas::render::RenderSettings;

use super::values::one_of;

/// `--model` for commands that need one and otherwise use the bundled default.
#[derive(Args, Clone, Debug, Default)]
pub struct ModelArg {
    /// Atlas model (.pt with its .json sidecar; default: EfficientNet-Lite0).
    #[arg(long)]
    model: Option<PathBuf>,
}

impl ModelArg {
    /// The model given, or the bundled default.
    pub fn path(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(defaults::default_model)
    }
}

/// How feature-visualization icons are rendered: a preset and the overrides given.
#[derive(Args, Clone, Debug)]
pub struct RenderArgs {
    /// Icon preset (its steps, tries, transforms, objective and whitening).
    #[arg(long, value_enum, default_value_t = IconPreset::Preview, value_parser = one_of::<IconPreset>())]
    preset: IconPreset,
    /// Optimization steps per icon (default: the preset's).
    #[arg(long)]
    steps: Option<usize>,
    /// Tries per icon, the best kept (default: the preset's).
    #[arg(long)]
    tries: Option<usize>,
    /// Icons optimized together (default: the preset's).
    #[arg(long)]
    batch: Option<usize>,
}

impl RenderArgs {
    /// The preset's settings with the steps, tries and batch given on the command line.
    pub fn settings(&self, seed: u64) -> Result<RenderSettings> {
        let mut render = RenderSettings::preset(self.preset.name())?;
        render.steps = self.steps.unwrap_or(render.steps);
        render.tries = self.tries.unwrap_or(render.tries);
        render.batch = self.batch.unwrap_or(render.batch);
        render.seed = seed;
        Ok(render)
    }
}

/// `--preset`: the names `RenderSettings::preset` takes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IconPreset {
    /// lucid, 128 steps, 1 try.
    Preview,
    /// lucid, 1024 steps, 4 tries.
    Paper,
    /// MACO (phase only; the clean objective on unwhitened directions), 128 steps.
    Maco,
    /// Feature accentuation: lucid started from each cell's exemplar patch and kept near it.
    Accent,
}

impl IconPreset {
    /// The preset's name, as the library and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            IconPreset::Preview => "preview",
            IconPreset::Paper => "paper",
            IconPreset::Maco => "maco",
            IconPreset::Accent => "accent",
        }
    }
}

/// `--layout` / `--method`: which 2-D layout an atlas uses.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutKind {
    /// UMAP with cosine distances.
    Umap,
    /// t-SNE (perplexity 50, learning rate 10, cosine).
    Tsne,
}

impl LayoutKind {
    /// A 2-D layout: UMAP with these neighbours and minimum distance, or t-SNE with its defaults.
    pub fn method(self, neighbors: usize, min_dist: f32, seed: u64) -> LayoutMethod {
        match self {
            LayoutKind::Umap => LayoutMethod::Umap(UmapParams {
                n_neighbors: neighbors,
                min_dist,
                seed,
                ..Default::default()
            }),
            LayoutKind::Tsne => LayoutMethod::Tsne(TsneParams {
                dims: 2,
                seed,
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--preset` offers exactly the library's presets, under the same names.
    #[test]
    fn presets_match_the_library() {
        let offered: Vec<&str> = IconPreset::value_variants()
            .iter()
            .map(|p| p.name())
            .collect();
        assert_eq!(offered, RenderSettings::PRESETS);
        for preset in IconPreset::value_variants() {
            let name = preset.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(name, preset.name());
            RenderSettings::preset(preset.name()).unwrap();
        }
    }
}
