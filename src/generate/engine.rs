//! The generation engine: one thread per device, each with a model cache, stepping
//! all live sessions of a model together (continuous batching).
//!
//! A session joins between steps and leaves when its piece is done or its client
//! has gone. Each keeps its own recurrent state and its own random generator, and
//! a loaded model's weights are laid out so that a row's logits are the same bits
//! at every batch size it is stepped at, up to [`MAX_BATCH_ROWS`] and a few rows of
//! padding ([`FrozenTokenNet::batch_rows`]): a request gives the same notes alone
//! or among many. Tensors never touch the async runtime: requests
//! arrive over a channel and notes leave over one.
//!
//! Each worker is supervised: a panic while stepping (a libtorch error, a bug)
//! fails that worker's sessions with [`SessionFailure::WorkerFailed`], and the
//! worker reloads its models and carries on. Sessions hold their share of the
//! capacity as [`Permit`]s, so whatever way a session ends, its share is freed.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use tch::{Kind as TensorKind, Tensor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::admission::{Admission, Permit, Place, Places, QueueLimits, Refusal, Refused};
use super::decoder::{self, EventsDecoder, EventsGrammar, PlannedPart};
use super::given::GivenPart;
use super::line_state::{LineState, gather};
use super::load::LoadGauge;
use super::lookahead::{CANDIDATES, Lookahead, settled};
use super::metrics::EngineMetrics;
use super::parts::primer_in_parts;
use super::request::{GivenDecoding, Pacing};
use super::request::{Length, MAX_PRIMER_TOKENS, MAX_TOKENS, ValidatedRequest};
use super::{GeneratedNote, Piece, offline, piece_of};
use crate::analysis::originality::CopyGuard;
use crate::devices::DeviceName;
use crate::devices::WeightFormat;
use crate::midi::{Score, TempoChange};
use crate::model::artifact::{LoadedModel, Net, Network, Representation, read_meta};
use crate::model::registry::ModelUse;
use crate::model::sampling::{Rng, Sampling, sample};
use crate::model::token_net::FrozenTokenNet;
use crate::repr::events::{self, Token};
use crate::repr::note_chord;
use crate::shared::LockSurvivingPanics;

/// Rows stepped together at most; more are stepped in chunks of this many.
pub const MAX_BATCH_ROWS: usize = 128;

/// How far ahead of its listener a realtime stream is written by default.
pub const REALTIME_LOOKAHEAD: Duration = Duration::from_millis(1500);

/// How many bars of an endless piece are kept, to be stored when it is stopped:
/// the last 64 (about two minutes at 120 bpm in 4/4).
pub const ENDLESS_KEPT_BARS: u32 = 64;

/// How long a worker whose every session is ahead of its listener waits before it
/// looks again (a new session wakes it at once).
const PARKED_POLL: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub struct EngineConfig {
    pub devices: Vec<DeviceName>,
    /// Live sessions per device worker; past them, requests wait in the queue.
    pub max_sessions_per_worker: usize,
    /// Live fast sessions per worker (of the engine's, in all); past them, fast
    /// requests wait in the queue. Realtime ones are admitted by projected load.
    pub max_fast_sessions_per_worker: usize,
    pub queue: QueueLimits,
    /// Parameter bytes each worker keeps loaded; least recently used models go first.
    pub cache_bytes: u64,
    /// How far ahead of its playback clock a realtime session is written; further
    /// ahead, it is parked and leaves the device to the others.
    pub realtime_lookahead: Duration,
    /// How loaded models keep their weights.
    pub weights: WeightFormat,
    /// Models every worker loads as it starts (the server's default), so that
    /// the first request for one does not wait for its load.
    pub preload: Vec<ModelToLoad>,
    pub metrics: Arc<EngineMetrics>,
}

#[derive(Debug, Clone)]
pub struct ModelToLoad {
    pub model_id: String,
    pub model_dir: PathBuf,
}

impl EngineConfig {
    /// One worker on `device` for a command or benchmark of its own: no queue,
    /// metrics nobody reads.
    pub fn local(device: tch::Device, max_sessions: usize, weights: WeightFormat) -> EngineConfig {
        EngineConfig {
            devices: vec![DeviceName(device)],
            max_sessions_per_worker: max_sessions,
            max_fast_sessions_per_worker: max_sessions,
            queue: QueueLimits { max_waiting: 0, max_wait: Duration::ZERO },
            cache_bytes: 1 << 30,
            realtime_lookahead: REALTIME_LOOKAHEAD,
            weights,
            preload: Vec::new(),
            metrics: Arc::new(EngineMetrics::unregistered()),
        }
    }

    /// The same with `workers` workers on its device (at least one), each loading
    /// `preload` as it starts, as a server's workers load its default model.
    pub fn with_workers(self, workers: usize, preload: Vec<ModelToLoad>) -> EngineConfig {
        EngineConfig { devices: vec![self.devices[0]; workers.max(1)], preload, ..self }
    }
}

/// A session to start.
pub struct SessionRequest {
    pub model_id: String,
    pub model_dir: PathBuf,
    pub validated: ValidatedRequest,
    /// The parts to write, for a model with parts (see [`super::parts::plan`]).
    pub parts: Vec<PlannedPart>,
    /// A part the user brought, for the decoder to force (see [`super::given`]).
    pub given: Option<GivenPart>,
    pub primer: Option<Score>,
    /// `max_copied_notes`: the guard the decoder masks copies with.
    pub copy_guard: Option<CopyGuard>,
    /// Keeps the model from being deleted while the session lives (`None` outside
    /// the server, as in `fugue bench`).
    pub hold: Option<Arc<ModelUse>>,
    /// What the listener sends while it plays (new settings, stop); `None` where
    /// nobody controls it.
    pub controls: Option<mpsc::UnboundedReceiver<SessionControl>>,
    /// The session's span: what the worker logs of it carries its id.
    pub span: tracing::Span,
}

/// What a listener may ask of a session while it plays.
#[derive(Debug)]
pub enum SessionControl {
    /// These settings for the rest of the piece (sampling, key, range, polyphony,
    /// tempo, instrument).
    Settings(Box<ValidatedRequest>),
    /// End at the next bar line, as a piece of that length would.
    Stop,
}

/// What a session reports, in order: notes as they complete, then the end.
#[derive(Debug)]
pub enum SessionEvent {
    Notes(Vec<GeneratedNote>),
    Finished(Piece),
    Failed(SessionFailure),
}

/// Why a session ended without its piece.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionFailure {
    /// The session could not start (its model would not load, say).
    #[error("{0}")]
    NotStarted(String),
    /// Its worker failed while stepping; the worker restarts and reloads its models.
    #[error("the generation worker on {device} failed ({cause}) and is restarting; try again")]
    WorkerFailed { device: String, cause: String },
}

/// How a worker is doing, as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Running,
    /// It failed and is reloading its models.
    Restarting,
    /// Its thread is gone; its device serves nothing.
    Dead,
}

/// A worker's device, state and restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WorkerStatus {
    #[schema(value_type = String, example = "cpu")]
    pub device: String,
    pub state: WorkerState,
    /// Times it failed and restarted since the server started.
    pub restarts: u64,
    /// Sessions it is writing now.
    pub live: usize,
}

#[derive(Clone)]
pub struct Engine {
    workers: Arc<Vec<WorkerHandle>>,
    admission: Arc<Admission>,
    load: Arc<LoadGauge>,
    /// The fast sessions' places, and how many there are in all.
    fast: Arc<Places>,
    max_fast_sessions: usize,
    metrics: Arc<EngineMetrics>,
}

struct WorkerHandle {
    device: DeviceName,
    commands: std_mpsc::Sender<Start>,
    /// This worker's share of the capacity: a permit per live session.
    capacity: Arc<Semaphore>,
    max_sessions: usize,
    cached: Arc<Mutex<Vec<String>>>,
    health: Arc<Health>,
}

impl WorkerHandle {
    /// Sessions it runs now (the permits it has given out).
    fn live(&self) -> usize {
        self.max_sessions - self.capacity.available_permits()
    }
}

/// Live sessions by which a worker may be busier than the least busy and still
/// be given a model it has loaded first (a quarter of a full batch); past them,
/// the least busy loads it too.
const SPREAD_SESSIONS: usize = MAX_BATCH_ROWS / 4;

/// A worker's state and restarts, shared with its handle.
#[derive(Default)]
struct Health {
    state: AtomicU8,
    restarts: AtomicU64,
    /// A realtime listener of this worker is falling behind (see
    /// [`Session::falling_behind`]): it takes no new session until it catches up.
    saturated: AtomicBool,
}

impl Health {
    fn set(&self, state: WorkerState) {
        self.state.store(state as u8, Ordering::SeqCst);
    }

    fn state(&self) -> WorkerState {
        match self.state.load(Ordering::SeqCst) {
            0 => WorkerState::Running,
            1 => WorkerState::Restarting,
            _ => WorkerState::Dead,
        }
    }
}

/// Marks the worker dead if its thread unwinds past its supervisor (a panic while
/// it restarts).
struct MarkDeadOnPanic(Arc<Health>);

impl Drop for MarkDeadOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set(WorkerState::Dead);
        }
    }
}

/// A session's shares of the capacity: its worker's, its kind's and the
/// engine's. Fields drop in order: the worker's and the kind's shares are free
/// before a queued request, woken by the engine's, looks for headroom and a
/// worker with room.
struct SessionPermit {
    _worker: OwnedSemaphorePermit,
    /// Its kind's place (a realtime listener's in the projected load, a fast
    /// session's among the fast ones), for a session that came through the queue.
    _kind: Option<Place>,
    _engine: Permit,
}

struct Start {
    request: SessionRequest,
    events: mpsc::UnboundedSender<SessionEvent>,
    permit: SessionPermit,
    /// When the request arrived (for the time to its first note).
    arrived: Instant,
}

impl Engine {
    pub fn start(config: &EngineConfig) -> Engine {
        let load = Arc::new(LoadGauge::new(MAX_BATCH_ROWS));
        let workers = config
            .devices
            .iter()
            .enumerate()
            .map(|(index, &device)| {
                let (commands, receiver) = std_mpsc::channel();
                let cached = Arc::new(Mutex::new(Vec::new()));
                let health = Arc::new(Health::default());
                let (worker_cached, worker_health, metrics) =
                    (cached.clone(), health.clone(), config.metrics.clone());
                let (cache_bytes, lookahead, weights) =
                    (config.cache_bytes, config.realtime_lookahead, config.weights);
                let worker_load = load.clone();
                let preload = config.preload.clone();
                let labels = WorkerLabels { device: device.to_string(), worker: index.to_string() };
                config.metrics.worker_up.with_label_values(&labels.values()).set(1);
                std::thread::Builder::new()
                    .name(format!("fugue-generate-{device}"))
                    .spawn(move || {
                        // Models live and die on this thread: they are not Sync.
                        let worker = Worker {
                            device,
                            labels,
                            cached: worker_cached,
                            cache: HashMap::new(),
                            cache_bytes,
                            lookahead,
                            weights,
                            sessions: Vec::new(),
                            metrics,
                            health: worker_health,
                            load: worker_load,
                        };
                        worker.supervise(&preload, receiver)
                    })
                    .expect("spawning a generation worker thread");
                WorkerHandle {
                    device,
                    commands,
                    capacity: Arc::new(Semaphore::new(config.max_sessions_per_worker)),
                    max_sessions: config.max_sessions_per_worker,
                    cached,
                    health,
                }
            })
            .collect::<Vec<_>>();
        let capacity =
            config.max_sessions_per_worker.saturating_mul(workers.len()).min(Semaphore::MAX_PERMITS);
        let admission = Admission::new(capacity, config.queue, config.metrics.clone());
        let max_fast_sessions = config.max_fast_sessions_per_worker.saturating_mul(workers.len());
        Engine {
            workers: Arc::new(workers),
            admission,
            load,
            fast: Arc::default(),
            max_fast_sessions,
            metrics: config.metrics.clone(),
        }
    }

    /// Starts a session now, or refuses it when every worker is full.
    pub fn submit(&self, request: SessionRequest) -> Result<mpsc::UnboundedReceiver<SessionEvent>, Refused> {
        let arrived = Instant::now();
        let permit = self.admission.try_admit()?;
        self.dispatch(request, permit, None, arrived)
    }

    /// Starts a session, waiting in the queue for capacity when there is none
    /// (refused when the queue is full or the wait too long).
    pub async fn enqueue(
        &self,
        request: SessionRequest,
    ) -> Result<mpsc::UnboundedReceiver<SessionEvent>, Refused> {
        let arrived = Instant::now();
        let realtime = request.validated.pacing == Pacing::Realtime;
        let (permit, share) = self.admission.admit(|| self.headroom(realtime)).await?;
        self.dispatch(request, permit, Some(share), arrived)
    }

    /// A place for a session of its kind, when a running worker keeps up with all
    /// its realtime listeners (a session admitted while none does would make every
    /// listener later) and the kind has room: for a realtime session, the load
    /// projected with it fits; for a fast one, fewer than the fast limit run.
    fn headroom(&self, realtime: bool) -> Option<Place> {
        let running = self.workers.iter().filter(|worker| worker.health.state() == WorkerState::Running);
        let mut keeping_up = running.clone().filter(|worker| !worker.health.saturated.load(Ordering::SeqCst));
        keeping_up.next()?;
        if realtime {
            self.load.try_reserve(running.count())
        } else {
            self.fast.try_take(|taken| taken < self.max_fast_sessions)
        }
    }

    /// Each worker's state.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.workers
            .iter()
            .map(|worker| WorkerStatus {
                device: worker.device.to_string(),
                state: worker.health.state(),
                restarts: worker.health.restarts.load(Ordering::SeqCst),
                live: worker.live(),
            })
            .collect()
    }

    pub fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// Hands an admitted session to a running worker with room, preferring one
    /// that has the model loaded, then the least busy.
    fn dispatch(
        &self,
        request: SessionRequest,
        engine_permit: Permit,
        kind: Option<Place>,
        arrived: Instant,
    ) -> Result<mpsc::UnboundedReceiver<SessionEvent>, Refused> {
        let has_model =
            |worker: &WorkerHandle| worker.cached.lock_surviving_panics().contains(&request.model_id);
        let mut candidates: Vec<&WorkerHandle> =
            self.workers.iter().filter(|worker| worker.health.state() != WorkerState::Dead).collect();
        // A worker that has the model loaded goes first among those about as busy
        // as the least busy (within SPREAD_SESSIONS live sessions of it), so that
        // one model's sessions spread over the workers (the cores) rather than
        // pile onto the first to load it.
        let least_busy = candidates.iter().map(|worker| worker.live()).min().unwrap_or(0);
        candidates.sort_by_key(|worker| {
            let saturated = worker.health.saturated.load(Ordering::SeqCst);
            let busy = (worker.live() - least_busy) / SPREAD_SESSIONS;
            (saturated, busy, !has_model(worker), std::cmp::Reverse(worker.capacity.available_permits()))
        });
        // The engine's permits never outnumber the workers' (the sum of theirs), so
        // one of the running workers has room.
        let Some((worker, worker_permit)) = candidates
            .into_iter()
            .find_map(|worker| Some((worker, worker.capacity.clone().try_acquire_owned().ok()?)))
        else {
            return Err(self.admission.refuse(Refusal::NoWorker));
        };
        let (events, receiver) = mpsc::unbounded_channel();
        let permit = SessionPermit { _worker: worker_permit, _kind: kind, _engine: engine_permit };
        let start = Start { request, events, permit, arrived };
        if worker.commands.send(start).is_err() {
            worker.health.set(WorkerState::Dead);
            return Err(self.admission.refuse(Refusal::NoWorker));
        }
        Ok(receiver)
    }
}

struct Cached {
    model: Rc<LoadedModel>,
    grammar: Option<Rc<EventsGrammar>>,
    dir: PathBuf,
    bytes: u64,
    last_used: Instant,
}

/// The values of [`super::metrics::WORKER_LABELS`] for one worker.
struct WorkerLabels {
    device: String,
    worker: String,
}

impl WorkerLabels {
    fn values(&self) -> [&str; 2] {
        [&self.device, &self.worker]
    }
}

struct Worker {
    device: DeviceName,
    labels: WorkerLabels,
    cached: Arc<Mutex<Vec<String>>>,
    cache: HashMap<String, Cached>,
    cache_bytes: u64,
    lookahead: Duration,
    weights: WeightFormat,
    sessions: Vec<Session>,
    metrics: Arc<EngineMetrics>,
    health: Arc<Health>,
    load: Arc<LoadGauge>,
}

struct Session {
    model_id: String,
    model: Rc<LoadedModel>,
    events: mpsc::UnboundedSender<SessionEvent>,
    validated: ValidatedRequest,
    /// The piece being written: one line, or the candidates of a look-ahead
    /// harmonization.
    lines: Vec<Line>,
    lookahead: Option<Lookahead>,
    /// For realtime pacing: the listener's playback, so that the session is
    /// written only a little ahead of it.
    playback: Option<Playback>,
    controls: Option<mpsc::UnboundedReceiver<SessionControl>>,
    /// Notes already sent to the client.
    sent: usize,
    peak_batch: usize,
    opened: Instant,
    arrived: Instant,
    /// When the last notes were sent (for the inter-note latency).
    last_sent: Option<Instant>,
    span: tracing::Span,
    _permit: SessionPermit,
    _hold: Option<Arc<ModelUse>>,
}

/// A realtime listener's playback: when it began (when the first notes were
/// sent), and how much was written by then.
#[derive(Debug, Clone, Copy)]
struct Playback {
    began: Instant,
    steps: u32,
    seconds_written: f64,
}

impl Playback {
    fn seconds_played(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.began).as_secs_f64()
    }
}

/// One way the piece could go: its recurrent state, decoder and notes.
struct Line {
    rng: Rng,
    state: LineState,
    next_input: i64,
    /// Inputs still to read before the first draw: the primer's tokens, then the
    /// first input. They are read in the batches, as rows whose outputs go unused,
    /// so that a crowd of new sessions is primed together, not one by one.
    feeding: VecDeque<i64>,
    decoding: Decoding,
    steps: u32,
    notes: Vec<GeneratedNote>,
    /// An endless stream keeps only its last [`ENDLESS_KEPT_BARS`] bars of notes,
    /// and has no step limit.
    endless: bool,
}

#[derive(Clone)]
enum Decoding {
    Events { grammar: Rc<EventsGrammar>, decoder: Box<EventsDecoder> },
    NoteChord { mask: Vec<f32>, tokens: Vec<i64>, target: u32 },
}

impl Worker {
    /// Runs rounds until the engine is gone; a round that panics fails the
    /// worker's sessions and the worker starts again, its models reloaded.
    fn supervise(mut self, preload: &[ModelToLoad], commands: std_mpsc::Receiver<Start>) {
        let _no_grad = tch::no_grad_guard();
        let _dead_if_it_unwinds = MarkDeadOnPanic(self.health.clone());
        if std::panic::catch_unwind(AssertUnwindSafe(|| self.warm_up(preload))).is_err() {
            // What it did not do, the first requests do (and fail as they would).
            tracing::warn!(device = %self.device, "warming up a generation worker panicked");
        }
        loop {
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.round(&commands))) {
                Ok(true) => {}
                Ok(false) => return,
                Err(panic) => self.restart(&*panic),
            }
        }
    }

    /// Does before the first request what it would otherwise wait for: probes
    /// the batch sizes the weights are stepped at (once per process, a few
    /// hundred products) and loads `preload`.
    fn warm_up(&mut self, preload: &[ModelToLoad]) {
        self.weights.on(self.device.0).batch_rows(1);
        for model in preload {
            if let Err(error) = self.load(&model.model_id, &model.model_dir) {
                // Its first request will load it again and say why it cannot.
                tracing::warn!(
                    model = model.model_id,
                    error = format!("{error:#}"),
                    "could not preload a model"
                );
            }
        }
    }

    /// One round: admits new sessions, applies their listeners' controls, steps
    /// every session that may step once, and ends the finished ones. False once
    /// the engine is gone.
    fn round(&mut self, commands: &std_mpsc::Receiver<Start>) -> bool {
        if self.sessions.is_empty() {
            match commands.recv() {
                Ok(start) => self.admit(start),
                Err(_) => return false,
            }
        }
        while let Ok(start) = commands.try_recv() {
            self.admit(start);
        }
        let round = Instant::now();
        // A listener that left frees its place at once.
        self.sessions.retain(|session| !session.events.is_closed());
        for session in &mut self.sessions {
            session.apply_controls();
        }
        // Every round looks at every live session: nothing here allocates or
        // reads the clock per session.
        let mut models: Vec<String> = Vec::new();
        for session in &self.sessions {
            if !models.contains(&session.model_id) {
                models.push(session.model_id.clone());
            }
        }
        models.sort();
        let (mut stepped, mut rows) = (0, 0);
        for model in models {
            let (sessions, lines) = self.step(&model, round);
            (stepped, rows) = (stepped + sessions, rows + lines);
        }
        for session in &mut self.sessions {
            session.settle();
        }
        // What a round costs, all of it, is what a listener's share of the
        // device costs.
        self.load.record_round(rows, round.elapsed().as_secs_f64());
        let worker = &self.labels.worker;
        self.metrics.sessions.with_label_values(&[worker, "live"]).set(self.sessions.len() as i64);
        let parked = (self.sessions.len() - stepped) as i64;
        self.metrics.sessions.with_label_values(&[worker, "parked"]).set(parked);
        if stepped == 0 && !self.sessions.is_empty() {
            // Every session is ahead of its listener: wait for a new one, or a moment.
            if let Ok(start) = commands.recv_timeout(PARKED_POLL) {
                self.admit(start);
            }
        }
        let done: Vec<Session> = self.sessions.extract_if(.., |session| session.finished()).collect();
        for mut session in done {
            let unsent = session.unsent();
            if !unsent.is_empty() {
                session.send_notes(unsent, &self.metrics);
            }
            let (piece, events) = (session.piece(), session.events.clone());
            // Its place is free before its client hears the end, so that the
            // client's next request finds it.
            drop(session);
            let _ = events.send(SessionEvent::Finished(piece));
        }
        // What a listener needs is measured from its first note on: the header
        // before it (the parts, their programs and names) is written once.
        self.load.record_listeners(self.sessions.iter().filter_map(|session| {
            let (Some(playback), Decoding::Events { grammar, decoder }) =
                (session.playback, &session.lines[0].decoding)
            else {
                return None;
            };
            Some((
                session.lines[0].steps - playback.steps,
                decoder.seconds_written(grammar) - playback.seconds_written,
            ))
        }));
        let (capacity, demand, listeners) = self.load.figures();
        for (figure, value) in
            [("worker_tokens_per_second", capacity), ("listener_tokens_per_second", demand)]
        {
            self.metrics.load.with_label_values(&[figure]).set(value);
        }
        self.metrics.load.with_label_values(&["listeners"]).set(listeners as f64);
        // After the finished sessions left: an idle worker waits for the next one
        // with this flag as it leaves it.
        let now = Instant::now();
        let saturated = self.sessions.iter().any(|session| session.falling_behind(self.lookahead, now));
        self.health.saturated.store(saturated, Ordering::SeqCst);
        true
    }

    /// After a panic: fails every session of this worker (their permits go with
    /// them), unloads its models and loads them again.
    fn restart(&mut self, panic: &(dyn std::any::Any + Send)) {
        let device = self.device.to_string();
        let cause = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        // libtorch's errors carry a C++ backtrace after their first line.
        let cause = cause.lines().next().unwrap_or_default().to_owned();
        tracing::error!(%device, %cause, sessions = self.sessions.len(), "a generation worker failed; restarting it");
        self.health.set(WorkerState::Restarting);
        self.health.restarts.fetch_add(1, Ordering::SeqCst);
        self.metrics.worker_restarts.with_label_values(&self.labels.values()).inc();
        self.metrics.worker_up.with_label_values(&self.labels.values()).set(0);
        let failure = SessionFailure::WorkerFailed { device: device.clone(), cause };
        for session in self.sessions.drain(..) {
            let _ = session.events.send(SessionEvent::Failed(failure.clone()));
        }
        self.health.saturated.store(false, Ordering::SeqCst);
        // Models are reloaded from their artifacts: whatever the failure left in
        // the loaded tensors goes with them.
        let models: Vec<(String, PathBuf)> =
            self.cache.drain().map(|(id, cached)| (id, cached.dir)).collect();
        self.publish_cache();
        for (id, dir) in models {
            if let Err(error) = self.load(&id, &dir) {
                tracing::warn!(%device, model = %id, error = format!("{error:#}"), "a model did not reload");
            }
        }
        self.health.set(WorkerState::Running);
        self.metrics.worker_up.with_label_values(&self.labels.values()).set(1);
    }

    fn admit(&mut self, start: Start) {
        let span = start.request.span.clone();
        let _entered = span.enter();
        let events = start.events.clone();
        match self.open(start) {
            Ok(Some(session)) => self.sessions.push(session),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "a generation session did not start");
                let _ = events.send(SessionEvent::Failed(SessionFailure::NotStarted(format!("{error:#}"))));
            }
        }
    }

    /// A session ready to step, or `None` when the piece was made at once (offline families).
    fn open(&mut self, start: Start) -> anyhow::Result<Option<Session>> {
        let Start { request, events, permit, arrived } = start;
        let opened = Instant::now();
        // A network that cannot step in batches is never loaded here (which would
        // hold up this worker's batched sessions): its piece is made whole beside.
        let cached = self.cache.contains_key(&request.model_id);
        if !cached && !matches!(read_meta(&request.model_dir)?.network, Network::Token(_)) {
            make_whole(request, events, permit, opened, self.device, self.weights)?;
            return Ok(None);
        }
        let (model, grammar) = self.load(&request.model_id, &request.model_dir)?;
        let validated = request.validated;
        let mut rng = Rng::new(validated.seed);
        let Net::Token(net) = &model.net else {
            anyhow::bail!("a network that cannot step in batches reached the batched worker: this is a bug");
        };
        let (decoding, primer_ids, first) = match (&model.meta.representation, grammar) {
            (Representation::Events { config, .. }, Some(grammar)) => {
                let bar =
                    grammar.id_of(Token::Bar).ok_or_else(|| anyhow::anyhow!("the vocabulary has no Bar"))?;
                let mut decoder = EventsDecoder::new(
                    validated.clone(),
                    request.parts.clone(),
                    request.given.clone(),
                    &grammar,
                );
                if let Some(guard) = request.copy_guard {
                    decoder.guard_copies(guard);
                }
                // A model with parts reads the header that declares them first,
                // then the primer, its notes in those parts. The header stays whole
                // however long the primer: a long primer keeps its last tokens.
                let header = decoder.header();
                let body = match &request.primer {
                    Some(score) if header.is_empty() => events::encode(score, config),
                    // Encoded in the planned parts, the primer declares the same header.
                    Some(score) => events::encode(&primer_in_parts(score, &request.parts), config)
                        .split_off(header.len()),
                    None => Vec::new(),
                };
                let primer: Vec<i64> =
                    primer_tokens(header, body).iter().filter_map(|t| grammar.id_of(*t)).collect();
                decoder.accept(Token::Bar, &grammar);
                (Decoding::Events { grammar, decoder: Box::new(decoder) }, primer, bar)
            }
            (Representation::NoteChord { config, vocabulary }, _) => {
                let mask = (0..vocabulary.len() as u32)
                    .map(|id| {
                        let pitches = vocabulary.token(id).map(note_chord::pitches_of);
                        let allowed = matches!(pitches, Some(Ok(pitches))
                            if pitches.iter().all(|&p| validated.pitches[usize::from(p)]));
                        if allowed { 0.0 } else { f32::NEG_INFINITY }
                    })
                    .collect::<Vec<f32>>();
                let primer: Vec<i64> = request
                    .primer
                    .as_ref()
                    .map(|score| {
                        note_chord::encode(score, config)
                            .iter()
                            .filter_map(|t| vocabulary.id(t))
                            .map(i64::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let target = match validated.length {
                    Length::Notes(n) | Length::Tokens(n) => n,
                    _ => anyhow::bail!("this model takes a length in notes or tokens"),
                };
                let first = (rng.next_u64() % vocabulary.len().max(1) as u64) as i64;
                (Decoding::NoteChord { mask, tokens: Vec::new(), target }, primer, first)
            }
            _ => anyhow::bail!("the model's network does not match its representation"),
        };
        let primer_ids = &primer_ids[primer_ids.len().saturating_sub(MAX_PRIMER_TOKENS)..];
        let mut feeding: VecDeque<i64> = primer_ids.iter().copied().chain([first]).collect();
        let next_input = feeding.pop_front().expect("the first input is there");
        let state = LineState::own(net.zero_state(1, self.device.0));
        let endless = matches!(validated.length, Length::Endless(_));
        let line = Line { rng, state, next_input, feeding, decoding, steps: 0, notes: Vec::new(), endless };
        let looks_ahead = request.given.is_some_and(|given| given.decoding == GivenDecoding::Lookahead);
        let (lines, lookahead) = if looks_ahead {
            // Each candidate draws from its own generator, seeded from the request's.
            let mut seeds = Rng::new(validated.seed ^ 0x6c6f_6f6b_6168_6561);
            let lines = (0..CANDIDATES).map(|_| line.fork(seeds.next_u64())).collect();
            (lines, Some(Lookahead::new(CANDIDATES, seeds.next_u64())))
        } else {
            (vec![line], None)
        };
        Ok(Some(Session {
            model_id: request.model_id,
            model: model.clone(),
            events,
            playback: None,
            validated,
            lines,
            lookahead,
            controls: request.controls,
            sent: 0,
            peak_batch: 0,
            opened,
            arrived,
            last_sent: None,
            span: request.span,
            _permit: permit,
            _hold: request.hold,
        }))
    }

    fn load(
        &mut self,
        id: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<(Rc<LoadedModel>, Option<Rc<EventsGrammar>>)> {
        if let Some(cached) = self.cache.get_mut(id) {
            cached.last_used = Instant::now();
            return Ok((cached.model.clone(), cached.grammar.clone()));
        }
        let model = Rc::new(LoadedModel::load(dir, self.device.0, self.weights)?);
        let bytes = model.vs.variables().values().map(|t| t.numel() as u64 * 4).sum();
        let grammar = match &model.meta.representation {
            Representation::Events { config, vocabulary, .. } => {
                Some(Rc::new(EventsGrammar::new(vocabulary, config)))
            }
            _ => None,
        };
        self.evict_for(bytes);
        let cached = Cached {
            model: model.clone(),
            grammar: grammar.clone(),
            dir: dir.to_owned(),
            bytes,
            last_used: Instant::now(),
        };
        self.cache.insert(id.to_owned(), cached);
        self.publish_cache();
        Ok((model, grammar))
    }

    /// Tells the engine (which routes sessions to workers with their model) and
    /// the metrics what is loaded.
    fn publish_cache(&self) {
        *self.cached.lock_surviving_panics() = self.cache.keys().cloned().collect();
        self.metrics.loaded_models.with_label_values(&self.labels.values()).set(self.cache.len() as i64);
        let bytes = self.cache.values().map(|cached| cached.bytes).sum::<u64>();
        self.metrics.loaded_model_bytes.with_label_values(&self.labels.values()).set(bytes as i64);
    }

    /// Drops least recently used models until `incoming` more bytes fit. Sessions
    /// hold their model themselves, so evicting one in use only unloads it later.
    fn evict_for(&mut self, incoming: u64) {
        while self.cache.values().map(|c| c.bytes).sum::<u64>() + incoming > self.cache_bytes {
            let Some(oldest) = self.cache.iter().min_by_key(|(_, c)| c.last_used).map(|(id, _)| id.clone())
            else {
                return;
            };
            self.cache.remove(&oldest);
        }
    }

    /// One batched step of every line that may step of every live session of
    /// `model`, the most urgent first (realtime sessions by how little they are
    /// ahead of their listener, then the fast ones); how many sessions stepped, and
    /// how many lines (rows) in all.
    ///
    /// Every session that is not parked steps once per round, so neither kind
    /// starves the other: a realtime session parks once it is `lookahead` ahead of
    /// its listener, and what it leaves of the device goes to the fast ones. A
    /// round in which every due session is realtime and well ahead steps none
    /// ([`all_well_ahead`]).
    fn step(&mut self, model: &str, now: Instant) -> (usize, usize) {
        let mut due: Vec<(f64, usize)> = (0..self.sessions.len())
            .filter(|&i| self.sessions[i].model_id == model)
            .filter_map(|i| self.sessions[i].slack(self.lookahead, now).map(|slack| (slack, i)))
            .collect();
        due.sort_by(|a, b| a.0.total_cmp(&b.0));
        if all_well_ahead(&due, self.lookahead) {
            return (0, 0);
        }
        let rows: Vec<Row> = due
            .iter()
            .flat_map(|&(_, session)| {
                self.sessions[session].stepping().into_iter().map(move |line| Row { session, line })
            })
            .collect();
        let Some(first) = rows.first() else { return (0, 0) };
        let loaded = self.sessions[first.session].model.clone();
        let Net::Token(net) = &loaded.net else { return (0, 0) };
        for chunk in rows.chunks(MAX_BATCH_ROWS) {
            let began = Instant::now();
            step_chunk(net, &mut self.sessions, chunk, self.lookahead, self.device.0, &self.metrics);
            self.metrics.step_seconds.observe(began.elapsed().as_secs_f64());
            self.metrics.batch_size.observe(chunk.len() as f64);
        }
        (due.len(), rows.len())
    }
}

/// A realtime session under the lookahead ahead of its listener is due, but its
/// worker steps none until one is this share of the lookahead under it: the
/// sessions then step together in fuller batches, and there are fewer rounds
/// (each looks at every live session).
const BATCHING_SHARE: f64 = 1.0 / 6.0;

/// Whether the due sessions (by slack, nearest first) are all realtime and all
/// within [`BATCHING_SHARE`] of the lookahead: then they wait for the first to
/// come a little closer to its listener, and the others that came under the
/// lookahead meanwhile step with it, in one fuller batch.
fn all_well_ahead(due: &[(f64, usize)], lookahead: Duration) -> bool {
    let waiting_room = lookahead.as_secs_f64() * (1.0 - BATCHING_SHARE);
    match (due.first(), due.last()) {
        (Some(&(nearest, _)), Some(&(furthest, _))) => nearest >= waiting_room && furthest.is_finite(),
        _ => false,
    }
}

/// Seconds of music a realtime session has written when its playback begins: a
/// third of the lookahead. One that falls back below it is falling behind.
fn starting_lead(lookahead: Duration) -> f64 {
    lookahead.as_secs_f64() / 3.0
}

/// Makes the piece of a model whose network cannot step in batches (piano roll,
/// seq2seq, melody-chords) on a thread of its own, with its own copy of the
/// model; the session's place is held until the piece is made.
fn make_whole(
    request: SessionRequest,
    events: mpsc::UnboundedSender<SessionEvent>,
    permit: SessionPermit,
    opened: Instant,
    device: DeviceName,
    weights: WeightFormat,
) -> anyhow::Result<()> {
    let validated = request.validated;
    let steps = match validated.length {
        Length::Notes(n) | Length::Tokens(n) => n,
        _ => anyhow::bail!("this model takes a length in notes or tokens"),
    };
    let dir = request.model_dir;
    std::thread::Builder::new().name(format!("fugue-generate-whole-{device}")).spawn(move || {
        let _no_grad = tch::no_grad_guard();
        let _place = permit;
        let mut rng = Rng::new(validated.seed);
        let made = LoadedModel::load(&dir, device.0, weights)
            .and_then(|model| offline::generate(&model, steps, &validated.sampling, &mut rng));
        let event = match made {
            Ok(mut score) => {
                apply_program_and_tempo(&mut score, &validated);
                SessionEvent::Finished(Piece { generated_in: opened.elapsed(), ..piece_of(&score, steps) })
            }
            Err(error) => SessionEvent::Failed(SessionFailure::NotStarted(format!("{error:#}"))),
        };
        let _ = events.send(event);
    })?;
    Ok(())
}

/// A line of a session, as one row of a batch.
#[derive(Debug, Clone, Copy)]
struct Row {
    session: usize,
    line: usize,
}

fn step_chunk(
    net: &FrozenTokenNet,
    sessions: &mut [Session],
    chunk: &[Row],
    lookahead: Duration,
    device: tch::Device,
    metrics: &EngineMetrics,
) {
    let padded = net.batch_rows(chunk.len());
    let line = |row: &Row| &sessions[row.session].lines[row.line];
    let mut ids: Vec<i64> = chunk.iter().map(|row| line(row).next_input).collect();
    ids.resize(padded, 0);
    let states: Vec<&LineState> = chunk.iter().map(|row| &line(row).state).collect();
    let state = gather(&states, padded);
    let input = Tensor::from_slice(&ids).to_device(device);
    let (logits, next) = net.step(&input, &state);
    let rows = chunk.len() as i64;
    let mut next_states = LineState::rows(next, chunk.len());
    let logits = logits.narrow(0, 0, rows);
    // One mask tensor for the chunk, and one draw per group of rows that share
    // their sampling settings (usually all): no tensor per row. A row still
    // reading its primer draws nothing.
    let vocabulary = logits.size()[1];
    let masks: Vec<Vec<f32>> = chunk
        .iter()
        .map(|row| if line(row).priming() { vec![0.0; vocabulary as usize] } else { line(row).mask() })
        .collect();
    let masked = &logits + Tensor::from_slice(&masks.concat()).view([rows, vocabulary]).to_device(device);
    let mut groups: Vec<(Sampling, Vec<usize>)> = Vec::new();
    for (member, row) in chunk.iter().enumerate().filter(|(_, row)| !line(row).priming()) {
        let sampling = sessions[row.session].validated.sampling;
        match groups.iter_mut().find(|(shared, _)| *shared == sampling) {
            Some((_, members)) => members.push(member),
            None => groups.push((sampling, vec![member])),
        }
    }
    let mut drawn = vec![0i64; chunk.len()];
    for (sampling, members) in &groups {
        let group = if members.len() == chunk.len() {
            masked.shallow_clone()
        } else {
            let index = members.iter().map(|&i| i as i64).collect::<Vec<_>>();
            masked.index_select(0, &Tensor::from_slice(&index).to_device(device))
        };
        let rng_of = |i: usize| sessions[chunk[i].session].lines[chunk[i].line].rng.clone();
        let mut rngs: Vec<Rng> = members.iter().map(|&i| rng_of(i)).collect();
        let ids = sample(&group, sampling, &mut rngs);
        for ((&member, id), rng) in members.iter().zip(ids).zip(rngs) {
            drawn[member] = id;
            let row = chunk[member];
            sessions[row.session].lines[row.line].rng = rng;
        }
    }
    // A look-ahead harmonization weighs its candidates by the model's
    // probabilities, read off the device once for the chunk.
    let log_probabilities: Option<Vec<Vec<f32>>> =
        chunk.iter().any(|row| sessions[row.session].lookahead.is_some()).then(|| {
            Vec::<Vec<f32>>::try_from(logits.log_softmax(-1, TensorKind::Float).to_device(tch::Device::Cpu))
                .expect("log-probabilities are a float matrix: this is a bug")
        });
    for (index, row) in chunk.iter().enumerate() {
        let session = &mut sessions[row.session];
        // What the session's own work logs carries its id.
        let _entered = session.span.clone().entered();
        session.peak_batch = session.peak_batch.max(chunk.len());
        let line = &mut session.lines[row.line];
        line.state = next_states.next().expect("one state per row");
        if let Some(input) = line.feeding.pop_front() {
            line.next_input = input;
            continue;
        }
        if let (Some(lookahead), Some(log_probabilities)) = (&mut session.lookahead, &log_probabilities) {
            lookahead.weigh(row.line, &log_probabilities[index], &masks[index], line.forced());
        }
        let completed = line.accept(drawn[index]);
        if session.lookahead.is_none() && !completed.is_empty() {
            session.relay(completed, lookahead, metrics);
        }
    }
}

impl Line {
    /// A copy to go its own way, drawing from a generator seeded with `seed`.
    fn fork(&self, seed: u64) -> Line {
        Line {
            rng: Rng::new(seed),
            state: self.state.clone(),
            next_input: self.next_input,
            feeding: self.feeding.clone(),
            decoding: self.decoding.clone(),
            steps: self.steps,
            notes: self.notes.clone(),
            endless: self.endless,
        }
    }

    /// Still reading its primer: the row's output goes unused.
    fn priming(&self) -> bool {
        !self.feeding.is_empty()
    }

    fn mask(&self) -> Vec<f32> {
        match &self.decoding {
            Decoding::Events { grammar, decoder } => decoder.mask(grammar),
            Decoding::NoteChord { mask, .. } => mask.clone(),
        }
    }

    /// The id the decoder forces next (a given note's token), if any.
    fn forced(&self) -> Option<i64> {
        match &self.decoding {
            Decoding::Events { grammar, decoder } => decoder.forced().and_then(|token| grammar.id_of(token)),
            Decoding::NoteChord { .. } => None,
        }
    }

    /// Takes the sampled id; returns the notes it completed.
    fn accept(&mut self, id: i64) -> Vec<GeneratedNote> {
        self.steps += 1;
        self.next_input = id;
        match &mut self.decoding {
            Decoding::Events { grammar, decoder } => {
                let token = grammar.token(id);
                let mut completed: Vec<GeneratedNote> =
                    token.and_then(|t| decoder.accept(t, grammar)).into_iter().collect();
                if self.steps >= 2 * MAX_TOKENS && !decoder.done() && !self.endless {
                    completed.extend(decoder.finish(grammar));
                }
                if decoder.done() {
                    completed.extend(decoder.finish(grammar));
                }
                self.notes.extend_from_slice(&completed);
                if self.endless && token == Some(Token::Bar) {
                    // An endless piece keeps only its last bars (and the tempo in force
                    // where they begin), so it needs no more memory the longer it plays.
                    let from = decoder.bars_back(ENDLESS_KEPT_BARS);
                    decoder.forget_tempos_before(from);
                    let from_beat = from as f64 / grammar.grid_per_beat();
                    self.notes.retain(|note| note.start_beat >= from_beat);
                }
                completed
            }
            Decoding::NoteChord { tokens, .. } => {
                tokens.push(id);
                Vec::new()
            }
        }
    }

    /// Ends the line at its next bar line (a note-chord line, which has none, at once).
    fn stop(&mut self) {
        match &mut self.decoding {
            Decoding::Events { decoder, .. } => decoder.stop(),
            Decoding::NoteChord { tokens, target, .. } => *target = tokens.len() as u32,
        }
    }

    fn finished(&self) -> bool {
        match &self.decoding {
            Decoding::Events { decoder, .. } => decoder.done(),
            Decoding::NoteChord { tokens, target, .. } => tokens.len() as u32 >= *target,
        }
    }

    /// Seconds of music written so far; `None` for a note-chord line, which does
    /// not know its time.
    fn seconds_written(&self) -> Option<f64> {
        match &self.decoding {
            Decoding::Events { grammar, decoder } => Some(decoder.seconds_written(grammar)),
            Decoding::NoteChord { .. } => None,
        }
    }

    fn given_progress(&self) -> usize {
        match &self.decoding {
            Decoding::Events { decoder, .. } => decoder.given_progress(),
            Decoding::NoteChord { .. } => 0,
        }
    }
}

impl Session {
    fn realtime(&self) -> bool {
        self.validated.pacing == Pacing::Realtime
    }

    /// How far ahead of its listener a realtime session is, in seconds (fast
    /// sessions count as never ahead); `None` when it is `lookahead` ahead or more
    /// and waits.
    fn slack(&self, lookahead: Duration, now: Instant) -> Option<f64> {
        if !self.realtime() {
            return Some(f64::INFINITY);
        }
        // Due until its playback begins (see [`Session::relay`]).
        let Some(playback) = self.playback else { return Some(0.0) };
        let ahead = self.lines[0].seconds_written().unwrap_or(0.0) - playback.seconds_played(now);
        (ahead < lookahead.as_secs_f64()).then_some(ahead)
    }

    /// Whether this realtime session is falling behind its listener: past its
    /// first third of the lookahead (its time to start), it has less than a third
    /// of the lookahead written ahead. A device that keeps up with its listeners
    /// keeps each near the whole lookahead ahead; one that falls below a third has
    /// no room for another session. (A line that does not know its time never
    /// counts.)
    fn falling_behind(&self, lookahead: Duration, now: Instant) -> bool {
        let (Some(playback), Some(written)) = (self.playback, self.lines[0].seconds_written()) else {
            return false;
        };
        let margin = starting_lead(lookahead);
        let playing = playback.seconds_played(now);
        playing > margin && written - playing < margin
    }

    /// Applies what the listener sent: the newest settings for the rest of the
    /// piece, and a stop.
    fn apply_controls(&mut self) {
        let Some(controls) = &mut self.controls else { return };
        let (mut newest, mut stop) = (None, false);
        while let Ok(control) = controls.try_recv() {
            match control {
                SessionControl::Settings(settings) => newest = Some(settings),
                SessionControl::Stop => stop = true,
            }
        }
        let _entered = (newest.is_some() || stop).then(|| self.span.clone().entered());
        if let Some(settings) = newest {
            self.validated.sampling = settings.sampling;
            for line in &mut self.lines {
                if let Decoding::Events { decoder, .. } = &mut line.decoding {
                    decoder.control(&settings);
                }
            }
        }
        if stop {
            tracing::debug!("stopped by its listener");
            self.lines.iter_mut().for_each(Line::stop);
        }
    }

    /// Sends newly completed notes to the listener. A realtime listener's first
    /// notes wait until a third of the lookahead is written: its playback
    /// begins with them, and a chord's other notes, written a round each after
    /// its first, would otherwise all be late from the start.
    fn relay(&mut self, completed: Vec<GeneratedNote>, lookahead: Duration, metrics: &EngineMetrics) {
        if !self.realtime() || self.playback.is_some() {
            return self.send_notes(completed, metrics);
        }
        if self.lines[0].seconds_written().is_some_and(|written| written < starting_lead(lookahead)) {
            return;
        }
        let unsent = self.unsent();
        self.send_notes(unsent, metrics);
    }

    /// Sends notes to the listener, timing the first and the gaps between.
    fn send_notes(&mut self, notes: Vec<GeneratedNote>, metrics: &EngineMetrics) {
        let now = Instant::now();
        if self.realtime() && self.playback.is_none() {
            // The listener's playback begins with its first notes.
            let line = &self.lines[0];
            let seconds_written = line.seconds_written().unwrap_or(0.0);
            self.playback = Some(Playback { began: now, steps: line.steps, seconds_written });
        }
        match self.last_sent {
            None => {
                let pacing = if self.realtime() { "realtime" } else { "fast" };
                let waited = now.duration_since(self.arrived).as_secs_f64();
                metrics.time_to_first_note.with_label_values(&[pacing]).observe(waited);
            }
            Some(last) => metrics.inter_note_seconds.observe(now.duration_since(last).as_secs_f64()),
        }
        self.last_sent = Some(now);
        self.sent += notes.len();
        let _ = self.events.send(SessionEvent::Notes(notes));
    }

    /// The lines that step now: the one line, or the candidates that have not yet
    /// written the given notes the others have reached (the rest wait for them).
    fn stepping(&self) -> Vec<usize> {
        let unfinished = || (0..self.lines.len()).filter(|&line| !self.lines[line].finished());
        if self.lookahead.is_none() {
            return unfinished().collect();
        }
        let behind = unfinished().map(|line| self.lines[line].given_progress()).min();
        unfinished().filter(|&line| Some(self.lines[line].given_progress()) == behind).collect()
    }

    /// For a look-ahead session: once every line has written the given notes at
    /// the same next onset, redraws the lines by their weights and sends the notes
    /// they all share.
    fn settle(&mut self) {
        let Some(lookahead) = &mut self.lookahead else { return };
        let progress: Vec<usize> = self.lines.iter().map(Line::given_progress).collect();
        let level = progress[0];
        if level <= lookahead.redrawn_at() || progress.iter().any(|&p| p != level) {
            return;
        }
        let redrawn: Vec<Line> =
            lookahead.redraw(level).into_iter().map(|(from, seed)| self.lines[from].fork(seed)).collect();
        self.lines = redrawn;
        let settled = settled(self.lines.iter().map(|line| line.notes.as_slice()));
        if settled > self.sent {
            let _ = self.events.send(SessionEvent::Notes(self.lines[0].notes[self.sent..settled].to_vec()));
            self.sent = settled;
        }
    }

    fn finished(&self) -> bool {
        self.lines.iter().all(Line::finished)
    }

    /// The line the piece is: the only one, or the likeliest candidate.
    fn chosen(&self) -> &Line {
        &self.lines[self.lookahead.as_ref().map_or(0, Lookahead::best)]
    }

    fn piece(&self) -> Piece {
        let line = self.chosen();
        let mut piece = match (&line.decoding, &self.model.meta.representation) {
            (Decoding::Events { grammar, decoder }, _) => {
                let per_beat = grammar.grid_per_beat();
                // An endless piece keeps its last bars, which become the piece.
                let from = if line.endless { decoder.bars_back(ENDLESS_KEPT_BARS) } else { 0 };
                let (from_beat, from_seconds) =
                    (from as f64 / per_beat, decoder::seconds_at(decoder.tempos(), from, per_beat));
                let since = |at: u64| at.saturating_sub(from) as f64 / per_beat;
                // The line kept no note before `from` (see `Line::accept`).
                let notes = decoder
                    .closed(line.notes.clone(), grammar)
                    .into_iter()
                    .map(|note| GeneratedNote {
                        start_beat: note.start_beat - from_beat,
                        start_seconds: note.start_seconds - from_seconds,
                        ..note
                    })
                    .collect();
                let tempos = in_force_from(decoder.tempos(), |tempo| tempo.0, from);
                let meters = in_force_from(decoder.meters(), |meter| meter.0, from);
                Piece {
                    notes,
                    tempos: tempos.iter().map(|&(at, bpm)| (since(at), bpm)).collect(),
                    meters: meters.iter().map(|&(at, n, d)| (since(at), n, d)).collect(),
                    tokens: line.steps,
                    peak_batch: self.peak_batch,
                    generated_in: self.opened.elapsed(),
                    given_log_likelihood: None,
                }
            }
            (Decoding::NoteChord { tokens, .. }, Representation::NoteChord { config, vocabulary }) => {
                let strings: Vec<String> =
                    tokens.iter().filter_map(|&id| vocabulary.token(id as u32)).map(str::to_owned).collect();
                let mut score =
                    note_chord::decode(&strings, config).unwrap_or_else(|_| Score::of_parts(480, vec![]));
                apply_program_and_tempo(&mut score, &self.validated);
                Piece {
                    peak_batch: self.peak_batch,
                    generated_in: self.opened.elapsed(),
                    ..piece_of(&score, line.steps)
                }
            }
            _ => piece_of(&Score::of_parts(480, vec![]), line.steps),
        };
        piece.given_log_likelihood = self.lookahead.as_ref().map(Lookahead::log_likelihood);
        piece
    }

    /// The chosen line's notes not sent yet (a look-ahead session's last ones).
    fn unsent(&self) -> Vec<GeneratedNote> {
        self.chosen().notes.get(self.sent..).unwrap_or_default().to_vec()
    }
}

/// The changes (tempos, meters; sorted by position) from the one in force at
/// position `from` on.
fn in_force_from<T>(changes: &[T], position: impl Fn(&T) -> u64, from: u64) -> &[T] {
    &changes[changes.iter().rposition(|change| position(change) <= from).unwrap_or(0)..]
}

fn apply_program_and_tempo(score: &mut Score, validated: &ValidatedRequest) {
    for part in &mut score.parts {
        part.program = validated.program;
    }
    if let Some(bpm) = validated.tempo_bpm {
        score.tempos = vec![TempoChange { tick: 0, micros_per_beat: (60_000_000.0 / bpm).round() as u32 }];
    }
}
/// The header whole, then as much of the primer's body as fits in
/// [`MAX_PRIMER_TOKENS`] with it, the body's last tokens.
fn primer_tokens(header: Vec<Token>, body: Vec<Token>) -> Vec<Token> {
    let room = MAX_PRIMER_TOKENS.saturating_sub(header.len());
    let kept = &body[body.len().saturating_sub(room)..];
    header.into_iter().chain(kept.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_sessions_wait_to_step_together_only_while_every_one_is_well_ahead() {
        let lookahead = Duration::from_millis(1500);
        // Within 0.25 s of the lookahead (1.25 s ahead or more), they wait.
        assert!(all_well_ahead(&[(1.3, 0), (1.45, 1)], lookahead));
        assert!(all_well_ahead(&[(1.25, 0)], lookahead));
        // One nearer its listener, a new one (no playback yet: 0), or a fast one:
        // they step now.
        assert!(!all_well_ahead(&[(1.2, 0), (1.45, 1)], lookahead));
        assert!(!all_well_ahead(&[(0.0, 0), (1.45, 1)], lookahead));
        assert!(!all_well_ahead(&[(1.3, 0), (f64::INFINITY, 1)], lookahead));
        assert!(!all_well_ahead(&[], lookahead));
    }

    #[test]
    fn a_long_primer_keeps_the_whole_header_and_its_own_last_tokens() {
        let header = vec![Token::Part(0), Token::Prog(52), Token::Part(1), Token::Prog(42)];
        let body: Vec<Token> = (0..3 * MAX_PRIMER_TOKENS).map(|i| Token::Pitch((i % 128) as u8)).collect();
        let kept = primer_tokens(header.clone(), body.clone());
        assert_eq!(kept.len(), MAX_PRIMER_TOKENS);
        assert_eq!(kept[..4], header[..]);
        assert_eq!(kept[4..], body[body.len() - (MAX_PRIMER_TOKENS - 4)..]);
        assert_eq!(primer_tokens(header.clone(), body[..3].to_vec()), [&header[..], &body[..3]].concat());
    }
}
