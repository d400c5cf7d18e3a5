//! The workbench's live classifier: one long-lived thread that owns the model and answers
//! "what does the model say about this picture?" while the user drags a patch around.
//!
//! Why a dedicated thread and not a job per request: a drag produces a request every frame, and
//! only the newest composite matters. The thread drains its queue before each forward pass and
//! answers only the latest composite (clean images and patches are never dropped: each is asked
//! once). The model is loaded on the first request and kept until the model file changes.
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use image::RgbImage;

use crate::attack::composite::{paste, prepare_background, resize_patch};
use crate::attack::probe::probabilities;
use crate::model::AtlasModel;

/// Where a patch sits on the background, in model-input pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Top-left corner (may be fractional while dragging; rounded for the composite).
    pub x: f32,
    pub y: f32,
    /// Side of the square patch.
    pub side: f32,
}

impl Placement {
    /// The integer rectangle the composite uses: (x, y, side).
    pub fn pixels(&self) -> (i64, i64, u32) {
        (
            self.x.round() as i64,
            self.y.round() as i64,
            self.side.round().max(0.0) as u32,
        )
    }
}

/// What to classify.
#[derive(Clone)]
pub enum ProbeInput {
    /// The background alone (already model-sized).
    Clean(Arc<RgbImage>),
    /// A patch alone, resized to the model input as a square (its own class).
    Patch { key: u64, image: Arc<RgbImage> },
    /// The background with the patch pasted at a placement.
    Composite {
        background: Arc<RgbImage>,
        patch: Arc<RgbImage>,
        at: (i64, i64, u32),
    },
}

pub struct ProbeRequest {
    /// Increases with every request; answers carry it so stale ones can be recognized.
    pub id: u64,
    pub model: PathBuf,
    pub input: ProbeInput,
}

/// What a request was about, echoed in the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeKind {
    Clean,
    Patch(u64),
    Composite((i64, i64, u32)),
}

pub struct ProbeAnswer {
    pub id: u64,
    pub kind: ProbeKind,
    pub result: Result<Vec<f32>, String>,
    /// The exact image the model saw (composites only): what the workbench shows once it is
    /// there, so the picture and the probabilities always belong together.
    pub composite: Option<RgbImage>,
}

/// Messages from the worker: answers, and status lines (model loading).
pub enum ProbeEvent {
    Status(String),
    Answer(ProbeAnswer),
}

/// The live classifier's handle. The thread starts with the first request and ends when the
/// handle is dropped (joined, so a model is never freed while the process tears libtorch down).
pub struct ProbeWorker {
    tx: Option<Sender<ProbeRequest>>,
    events_tx: Sender<ProbeEvent>,
    pub events: Receiver<ProbeEvent>,
    thread: Option<JoinHandle<()>>,
    next_id: u64,
}

impl Default for ProbeWorker {
    fn default() -> Self {
        let (events_tx, events) = crossbeam_channel::unbounded();
        ProbeWorker {
            tx: None,
            events_tx,
            events,
            thread: None,
            next_id: 0,
        }
    }
}

impl ProbeWorker {
    /// Queues a request (starting the thread if needed); returns its id.
    pub fn ask(&mut self, model: PathBuf, input: ProbeInput) -> u64 {
        self.next_id += 1;
        let tx = self.tx.get_or_insert_with(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<ProbeRequest>();
            let events = self.events_tx.clone();
            self.thread = Some(
                std::thread::Builder::new()
                    .name("attack-probe".into())
                    .spawn(move || serve(rx, events))
                    .expect("spawn the probe thread"),
            );
            tx
        });
        let _ = tx.send(ProbeRequest {
            id: self.next_id,
            model,
            input,
        });
        self.next_id
    }

    /// Closes the queue and returns the thread to join (it ends after the request in hand).
    pub fn stop(&mut self) -> Option<JoinHandle<()>> {
        self.tx = None;
        self.thread.take()
    }
}

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        if let Some(t) = self.stop() {
            let _ = t.join();
        }
    }
}

fn serve(rx: Receiver<ProbeRequest>, tx: Sender<ProbeEvent>) {
    let mut model: Option<AtlasModel> = None;
    while let Ok(first) = rx.recv() {
        // Everything queued now: keep clean and patch requests, and only the newest composite.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let newest_composite = batch
            .iter()
            .rposition(|r| matches!(r.input, ProbeInput::Composite { .. }));
        for (i, req) in batch.into_iter().enumerate() {
            let is_composite = matches!(req.input, ProbeInput::Composite { .. });
            if is_composite && Some(i) != newest_composite {
                continue;
            }
            if model.as_ref().is_none_or(|m| m.path != req.model) {
                model = None;
                let _ = tx.send(ProbeEvent::Status("loading the model…".into()));
                match AtlasModel::load(&req.model, crate::model::default_device()) {
                    Ok(m) => {
                        model = Some(m);
                        let _ = tx.send(ProbeEvent::Status(String::new()));
                    }
                    Err(e) => {
                        let _ = tx.send(ProbeEvent::Answer(ProbeAnswer {
                            id: req.id,
                            kind: kind_of(&req.input),
                            result: Err(format!("{e:#}")),
                            composite: None,
                        }));
                        continue;
                    }
                }
            }
            let m = model.as_ref().expect("loaded above");
            let answer = answer(m, req);
            if tx.send(ProbeEvent::Answer(answer)).is_err() {
                return;
            }
        }
    }
}

fn kind_of(input: &ProbeInput) -> ProbeKind {
    match input {
        ProbeInput::Clean(_) => ProbeKind::Clean,
        ProbeInput::Patch { key, .. } => ProbeKind::Patch(*key),
        ProbeInput::Composite { at, .. } => ProbeKind::Composite(*at),
    }
}

fn answer(model: &AtlasModel, req: ProbeRequest) -> ProbeAnswer {
    let kind = kind_of(&req.input);
    let side = model.info.size().0;
    let (picture, keep) = match req.input {
        ProbeInput::Clean(bg) => ((*bg).clone(), false),
        ProbeInput::Patch { image, .. } => (prepare_background(&image, side), false),
        ProbeInput::Composite {
            background,
            patch,
            at: (x, y, w),
        } => (paste(&background, &resize_patch(&patch, w), x, y), true),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        probabilities(model, std::slice::from_ref(&picture))
    }));
    let result = match result {
        Ok(Ok(mut probs)) => probs.pop().ok_or_else(|| "no output".to_string()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("the model crashed on this input".into()),
    };
    ProbeAnswer {
        id: req.id,
        kind,
        result,
        composite: keep.then_some(picture),
    }
}
