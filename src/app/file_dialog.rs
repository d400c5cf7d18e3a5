//! File dialogs that always open. Routes, in order:
//!
//! 1. the desktop portal (through `rfd`, which itself falls back to `zenity` when the portal call
//!    fails and zenity is installed);
//! 2. `kdialog`, when it is on the `PATH`;
//! 3. an in-app browser (the `egui_file` crate), drawn by the window itself.
//!
//! `rfd` answers "nothing chosen" both when the user closed its dialog and when no dialog could
//! open at all. The two are told apart by time: no person closes a dialog within
//! [`NO_DIALOG_WITHIN`], while a missing portal answers in about 40 ms. The environment variable
//! `ATLAS_FILE_DIALOG=portal|kdialog|builtin` picks one route (for a desktop whose portal is
//! broken, and for the tests).
//!
//! Every `pick` blocks, so it runs on a job thread, never on the UI thread. The in-app route
//! hands its request to the window through [`BuiltinBrowser`] and waits for the answer.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use eframe::egui;

use crate::jobs::CancelToken;

/// An answer of "nothing chosen" that comes back sooner than this means no dialog was shown.
pub const NO_DIALOG_WITHIN: Duration = Duration::from_millis(500);

/// The image formats the app reads, for the dialogs' filters.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// What to ask the user for.
#[derive(Clone, Debug)]
pub struct PickRequest {
    pub title: String,
    pub target: Target,
    /// A name for the filter and the extensions it lets through (files only; empty: all files).
    pub filter: Option<(String, Vec<String>)>,
}

/// A folder or one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Folder,
    File,
}

impl PickRequest {
    pub fn folder(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            target: Target::Folder,
            filter: None,
        }
    }

    pub fn file(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            target: Target::File,
            filter: None,
        }
    }

    pub fn filter(mut self, name: &str, extensions: &[&str]) -> Self {
        let exts = extensions.iter().map(|e| (*e).to_owned()).collect();
        self.filter = Some((name.to_owned(), exts));
        self
    }

    /// Whether `path` passes the filter (folders always do, so the user can walk into them).
    pub fn accepts(&self, path: &Path) -> bool {
        let Some((_, exts)) = &self.filter else {
            return true;
        };
        if path.is_dir() {
            return true;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        exts.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }
}

/// How one route answered.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteAnswer {
    /// A dialog was shown; `None` means the user closed it without a choice.
    Answered(Option<PathBuf>),
    /// This route cannot show a dialog here; try the next one.
    Unavailable,
}

/// The routes, in the order they are tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Portal,
    Kdialog,
    Builtin,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Portal => "desktop-portal (or zenity)",
            Route::Kdialog => "kdialog",
            Route::Builtin => "in-app",
        }
    }

    /// The routes to try: all of them, or the one `ATLAS_FILE_DIALOG` names.
    pub fn chain(setting: Option<&str>) -> Vec<Route> {
        match setting.map(str::trim) {
            Some("portal") => vec![Route::Portal],
            Some("kdialog") => vec![Route::Kdialog],
            Some("builtin") => vec![Route::Builtin],
            _ => vec![Route::Portal, Route::Kdialog, Route::Builtin],
        }
    }
}

/// Asks the user for a path, trying each route until one shows a dialog. `None`: the user closed
/// the dialog, the job was cancelled, or (logged) no route could show anything.
pub fn pick(req: &PickRequest, cancel: &CancelToken) -> Option<PathBuf> {
    let setting = if only_builtin() {
        Some("builtin".to_owned())
    } else {
        std::env::var("ATLAS_FILE_DIALOG").ok()
    };
    pick_with(
        req,
        &Route::chain(setting.as_deref()),
        |route| match route {
            Route::Portal => portal(req),
            Route::Kdialog => kdialog(req),
            Route::Builtin => builtin(req, cancel),
        },
    )
}

/// The route-by-route fallback, with the routes given (tests pass fakes).
pub fn pick_with(
    req: &PickRequest,
    routes: &[Route],
    mut try_route: impl FnMut(Route) -> RouteAnswer,
) -> Option<PathBuf> {
    for &route in routes {
        match try_route(route) {
            RouteAnswer::Answered(path) => return path,
            RouteAnswer::Unavailable => {
                eprintln!(
                    "file dialog: no {} dialog here for {:?}",
                    route.name(),
                    req.title
                );
            }
        }
    }
    eprintln!("file dialog: no route could open a dialog; drop the file or folder on the window");
    None
}

/// Reads an "empty" answer by how long it took (see the module's comment).
pub fn judge_by_time(path: Option<PathBuf>, took: Duration) -> RouteAnswer {
    match path {
        Some(p) => RouteAnswer::Answered(Some(p)),
        None if took < NO_DIALOG_WITHIN => RouteAnswer::Unavailable,
        None => RouteAnswer::Answered(None),
    }
}

/// The desktop portal through `rfd` (with rfd's own zenity fallback).
fn portal(req: &PickRequest) -> RouteAnswer {
    let mut dialog = rfd::FileDialog::new().set_title(&req.title);
    if let Some((name, exts)) = &req.filter {
        dialog = dialog.add_filter(name, exts);
    }
    let started = Instant::now();
    let path = match req.target {
        Target::Folder => dialog.pick_folder(),
        Target::File => dialog.pick_file(),
    };
    judge_by_time(path, started.elapsed())
}

/// KDE's `kdialog`: exit status 0 with the path on stdout, 1 when closed.
fn kdialog(req: &PickRequest) -> RouteAnswer {
    let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut cmd = Command::new("kdialog");
    cmd.arg("--title").arg(&req.title);
    match req.target {
        Target::Folder => cmd.arg("--getexistingdirectory").arg(&start),
        Target::File => {
            cmd.arg("--getopenfilename").arg(&start);
            if let Some((name, exts)) = &req.filter {
                let globs: Vec<String> = exts.iter().map(|e| format!("*.{e}")).collect();
                cmd.arg(format!("{name} ({})", globs.join(" ")));
            }
            &mut cmd
        }
    };
    match cmd.output() {
        Err(e) if e.kind() == ErrorKind::NotFound => RouteAnswer::Unavailable,
        Err(e) => {
            eprintln!("file dialog: kdialog failed to start: {e}");
            RouteAnswer::Unavailable
        }
        Ok(out) => match out.status.code() {
            Some(0) => {
                let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                RouteAnswer::Answered((!text.is_empty()).then(|| PathBuf::from(text)))
            }
            Some(1) => RouteAnswer::Answered(None),
            _ => RouteAnswer::Unavailable,
        },
    }
}

/// A request handed to the window's in-app browser, with where to send the answer.
struct BrowserRequest {
    req: PickRequest,
    answer: Sender<Option<PathBuf>>,
}

/// The way from job threads to the window. A process has one window, and the threads that ask
/// for a dialog hold no handle to it, hence one process-wide link, set by [`BuiltinBrowser::new`].
struct Link {
    requests: Sender<BrowserRequest>,
    /// To wake the window when a request arrives (set on the first frame).
    ctx: Option<egui::Context>,
    /// Skip the native routes (the window's tests, which must not pop up a desktop dialog).
    only_builtin: bool,
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

fn link() -> std::sync::MutexGuard<'static, Option<Link>> {
    // A panic while holding the lock leaves nothing half-written: the link is replaced whole.
    LINK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn only_builtin() -> bool {
    link().as_ref().is_some_and(|l| l.only_builtin)
}

/// The in-app route: asks the window to show its browser and waits for the answer.
fn builtin(req: &PickRequest, cancel: &CancelToken) -> RouteAnswer {
    let (answer, answered) = crossbeam_channel::bounded(1);
    {
        let link = link();
        let Some(link) = link.as_ref() else {
            return RouteAnswer::Unavailable;
        };
        let request = BrowserRequest {
            req: req.clone(),
            answer,
        };
        if link.requests.send(request).is_err() {
            return RouteAnswer::Unavailable;
        }
        if let Some(ctx) = &link.ctx {
            ctx.request_repaint();
        }
    }
    wait_for_answer(&answered, cancel)
}

/// Waits for the browser's answer, giving up when the job is cancelled or the window is gone.
fn wait_for_answer(answered: &Receiver<Option<PathBuf>>, cancel: &CancelToken) -> RouteAnswer {
    loop {
        if cancel.is_cancelled() {
            return RouteAnswer::Answered(None);
        }
        match answered.recv_timeout(Duration::from_millis(100)) {
            Ok(path) => return RouteAnswer::Answered(path),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return RouteAnswer::Answered(None)
            }
        }
    }
}

/// The window's side of the in-app route: one browser at a time, later requests wait their turn.
pub struct BuiltinBrowser {
    requests: Receiver<BrowserRequest>,
    open: Option<(egui_file::FileDialog, Sender<Option<PathBuf>>)>,
    /// Where the next browser starts: the folder of the last choice, at first the working folder.
    start: Option<PathBuf>,
}

impl Default for BuiltinBrowser {
    fn default() -> Self {
        Self::new()
    }
}

impl BuiltinBrowser {
    /// Creates the browser and links it to the job threads (replacing an earlier window's link).
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        *link() = Some(Link {
            requests: tx,
            ctx: None,
            only_builtin: false,
        });
        Self {
            requests: rx,
            open: None,
            start: None,
        }
    }

    /// Shows every dialog in the window, never a desktop one (for the window's tests).
    pub fn use_only_builtin(&mut self) {
        if let Some(link) = link().as_mut() {
            link.only_builtin = true;
        }
    }

    /// Starts the next browser in `folder`.
    pub fn start_in(&mut self, folder: PathBuf) {
        self.start = Some(folder);
    }

    /// Whether the browser is on screen.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Shows the browser when a request is waiting; sends the answer when the user is done.
    pub fn show(&mut self, ctx: &egui::Context) {
        Self::remember_ctx(ctx);
        if self.open.is_none() {
            if let Ok(request) = self.requests.try_recv() {
                let start = self.start.clone().or_else(|| std::env::current_dir().ok());
                let dialog = browser_for(&request.req, start.unwrap_or_else(|| "/".into()));
                self.open = Some((dialog, request.answer));
            }
        }
        let Some((dialog, _)) = &mut self.open else {
            return;
        };
        dialog.show(ctx);
        let answer = match dialog.state() {
            egui_file::State::Open => return,
            egui_file::State::Selected => dialog.path().map(Path::to_path_buf),
            egui_file::State::Cancelled | egui_file::State::Closed => None,
        };
        if let Some(parent) = answer.as_deref().and_then(Path::parent) {
            self.start = Some(parent.to_path_buf());
        }
        if let Some((_, reply)) = self.open.take() {
            // The asking job may have been cancelled meanwhile; then nobody waits.
            let _ = reply.send(answer);
        }
        ctx.request_repaint();
    }

    fn remember_ctx(ctx: &egui::Context) {
        if let Some(link) = link().as_mut() {
            if link.ctx.is_none() {
                link.ctx = Some(ctx.clone());
            }
        }
    }
}

/// An `egui_file` dialog for the request, open in `start`.
fn browser_for(req: &PickRequest, start: PathBuf) -> egui_file::FileDialog {
    let mut dialog = match req.target {
        Target::Folder => egui_file::FileDialog::select_folder(),
        Target::File => egui_file::FileDialog::open_file(),
    }
    .initial_path(start)
    .title(&req.title)
    .id(egui::Id::unique("atlas-builtin-file-dialog"))
    .default_size([640.0, 420.0])
    .show_new_folder(false)
    .show_rename(false)
    .keep_on_top(true);
    if req.filter.is_some() {
        let req = req.clone();
        dialog = dialog.show_files_filter(Box::new(move |p: &Path| req.accepts(p)));
    }
    dialog.open();
    dialog
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_empty_answer_means_no_dialog_a_slow_one_a_closed_dialog() {
        let fast = NO_DIALOG_WITHIN / 10;
        let slow = NO_DIALOG_WITHIN * 4;
        assert_eq!(judge_by_time(None, fast), RouteAnswer::Unavailable);
        assert_eq!(judge_by_time(None, slow), RouteAnswer::Answered(None));
        let p = PathBuf::from("/x");
        assert_eq!(
            judge_by_time(Some(p.clone()), fast),
            RouteAnswer::Answered(Some(p))
        );
    }

    #[test]
    fn routes_are_tried_in_order_until_one_shows_a_dialog() {
        let req = PickRequest::folder("t");
        let mut tried = vec![];
        let got = pick_with(&req, &Route::chain(None), |r| {
            tried.push(r);
            match r {
                Route::Builtin => RouteAnswer::Answered(Some(PathBuf::from("/chosen"))),
                _ => RouteAnswer::Unavailable,
            }
        });
        assert_eq!(got, Some(PathBuf::from("/chosen")));
        assert_eq!(tried, [Route::Portal, Route::Kdialog, Route::Builtin]);

        // A dialog the user closed ends the search: no second dialog pops up.
        let mut tried = vec![];
        let got = pick_with(&req, &Route::chain(None), |r| {
            tried.push(r);
            RouteAnswer::Answered(None)
        });
        assert_eq!(got, None);
        assert_eq!(tried, [Route::Portal]);
    }

    #[test]
    fn the_setting_picks_one_route() {
        assert_eq!(Route::chain(Some("builtin")), [Route::Builtin]);
        assert_eq!(Route::chain(Some("kdialog")), [Route::Kdialog]);
        assert_eq!(Route::chain(Some("portal")), [Route::Portal]);
        assert_eq!(Route::chain(Some("nonsense")).len(), 3);
    }

    #[test]
    fn the_filter_lets_folders_and_listed_extensions_through() {
        let dir = std::env::temp_dir();
        let req = PickRequest::file("t").filter("Images", IMAGE_EXTENSIONS);
        assert!(req.accepts(&dir));
        assert!(req.accepts(Path::new("/nowhere/a.JPG")));
        assert!(!req.accepts(Path::new("/nowhere/model.pt")));
        assert!(PickRequest::file("t").accepts(Path::new("/nowhere/model.pt")));
    }
}
