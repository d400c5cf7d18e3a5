//! The keys of the app's one job registry: every background job of the window, on any page, is
//! registered under one of these (at most one job per key), polled once a frame from
//! `AtlasApp::logic` whatever page is on screen, and stopped by `AtlasApp::shutdown`.
//!
//! A new job: add its key here, start it with `jobs.start(JobId::…, || spawn…)` and poll it with
//! `jobs.poll::<Result, Partial>(&JobId::…)` in the owning page's `logic`.
use crate::jobs::JobRegistry;

/// The app's registry.
pub type Jobs = JobRegistry<JobId>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobId {
    // The project (Images and Atlas pages).
    /// Loads the model, scans the folder, classifies every image.
    Open,
    Collect,
    /// Collects and builds the project's atlas.
    Build,
    /// Reads atlas folders (several may run: the number tells them apart).
    LoadAtlas(u64),
    PickFolder,
    PickModel,
    /// Cuts the dataset examples of a selected cell (Atlas page or Classes page).
    Examples(ExamplesOf),
    // One image page.
    Analysis,
    Attribution,
    OptimizeIcons,
    PickImage,
    // Classes page.
    ClassAtlas,
    Compare,
    ClassPairs,
    /// Cuts the patch chosen with "Use as patch".
    CutPatch,
    /// Reads one of the page's atlas folders.
    ClassesLoad(u64),
    // Patch attack page.
    /// Reads a target image or a patch, or asks for a file (several may run).
    AttackLoad(u64),
    Sweep,
    Batch,
    PickBatchFolder,
    /// Reads the picture of the patch cutter.
    CutterLoad,
}

/// Which page's dataset examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExamplesOf {
    Atlas,
    Classes,
}

impl JobId {
    pub fn is_atlas_load(&self) -> bool {
        matches!(self, JobId::LoadAtlas(_))
    }
    pub fn is_classes_load(&self) -> bool {
        matches!(self, JobId::ClassesLoad(_))
    }
    pub fn is_attack_load(&self) -> bool {
        matches!(self, JobId::AttackLoad(_))
    }
}
