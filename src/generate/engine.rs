//! The generation engine: one thread per device, each with a model cache, stepping
//! all live sessions of a model together (continuous batching).
//!
//! A session joins between steps and leaves when its piece is done or its client
//! has gone. Each keeps its own recurrent state and its own random generator, and
//! batches are padded to fixed sizes ([`BUCKETS`]): on the CPU a row's matrix
//! product is bit-for-bit the same at every batch size of 4 or more (and differs
//! below), so a request gives the same notes alone or among many. Tensors never
//! touch the async runtime: requests arrive over a channel and notes leave over one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc};
use std::time::Instant;

use tch::{Kind as TensorKind, Tensor};
use tokio::sync::mpsc;

use super::decoder::{EventsDecoder, EventsGrammar, PlannedPart};
use super::parts::primer_in_parts;
use super::request::{Length, MAX_PRIMER_TOKENS, MAX_TOKENS, ValidatedRequest};
use super::{GeneratedNote, Piece, offline, piece_of};
use crate::analysis::originality::CopyGuard;
use crate::devices::DeviceName;
use crate::midi::{Score, TempoChange};
use crate::model::artifact::{LoadedModel, Net, Representation};
use crate::model::lstm::LstmState;
use crate::model::registry::ModelUse;
use crate::model::sampling::{Rng, sample};
use crate::model::token_net::TokenNet;
use crate::repr::events::{self, Token};
use crate::repr::note_chord;

/// Batch sizes sessions are padded to.
pub const BUCKETS: [usize; 3] = [4, 16, 64];

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub devices: Vec<DeviceName>,
    /// Live sessions per device worker; over it, requests are refused (429).
    pub max_sessions_per_worker: usize,
    /// Parameter bytes each worker keeps loaded; least recently used models go first.
    pub cache_bytes: u64,
}

/// A session to start.
pub struct SessionRequest {
    pub model_id: String,
    pub model_dir: PathBuf,
    pub validated: ValidatedRequest,
    /// The parts to write, for a model with parts (see [`super::parts::plan`]).
    pub parts: Vec<PlannedPart>,
    pub primer: Option<Score>,
    /// `max_copied_notes`: the guard the decoder masks copies with.
    pub copy_guard: Option<CopyGuard>,
    /// Keeps the model from being deleted while the session lives (`None` outside
    /// the server, as in `fugue bench`).
    pub hold: Option<ModelUse>,
}

/// What a session reports, in order: notes as they complete, then the end.
#[derive(Debug)]
pub enum SessionEvent {
    Notes(Vec<GeneratedNote>),
    Finished(Piece),
    Failed(String),
}

/// Every worker is at its session limit.
#[derive(Debug, Clone, Copy)]
pub struct AllWorkersFull;

#[derive(Clone)]
pub struct Engine {
    workers: Arc<Vec<WorkerHandle>>,
    max_sessions: usize,
}

struct WorkerHandle {
    commands: std_mpsc::Sender<Start>,
    live: Arc<AtomicUsize>,
    cached: Arc<Mutex<Vec<String>>>,
}

struct Start {
    request: SessionRequest,
    events: mpsc::UnboundedSender<SessionEvent>,
}

impl Engine {
    pub fn start(config: &EngineConfig) -> Engine {
        let workers = config
            .devices
            .iter()
            .map(|&device| {
                let (commands, receiver) = std_mpsc::channel();
                let live = Arc::new(AtomicUsize::new(0));
                let cached = Arc::new(Mutex::new(Vec::new()));
                let (worker_live, worker_cached, cache_bytes) =
                    (live.clone(), cached.clone(), config.cache_bytes);
                std::thread::Builder::new()
                    .name(format!("fugue-generate-{device}"))
                    .spawn(move || {
                        // Models live and die on this thread: they are not Sync.
                        let worker = Worker {
                            device,
                            live: worker_live,
                            cached: worker_cached,
                            cache: HashMap::new(),
                            cache_bytes,
                            sessions: Vec::new(),
                        };
                        worker.run(receiver)
                    })
                    .expect("spawning a generation worker thread");
                WorkerHandle { commands, live, cached }
            })
            .collect();
        Engine { workers: Arc::new(workers), max_sessions: config.max_sessions_per_worker }
    }

    /// Starts a session on the least busy worker, preferring one that has the model
    /// loaded; `AllWorkersFull` when every worker is full.
    pub fn submit(
        &self,
        request: SessionRequest,
    ) -> Result<mpsc::UnboundedReceiver<SessionEvent>, AllWorkersFull> {
        let has_model = |worker: &WorkerHandle| {
            worker.cached.lock().unwrap_or_else(PoisonError::into_inner).contains(&request.model_id)
        };
        let worker = self
            .workers
            .iter()
            .filter(|worker| worker.live.load(Ordering::SeqCst) < self.max_sessions)
            .min_by_key(|worker| (!has_model(worker), worker.live.load(Ordering::SeqCst)))
            .ok_or(AllWorkersFull)?;
        if worker.live.fetch_add(1, Ordering::SeqCst) >= self.max_sessions {
            worker.live.fetch_sub(1, Ordering::SeqCst);
            return Err(AllWorkersFull);
        }
        let (events, receiver) = mpsc::unbounded_channel();
        if worker.commands.send(Start { request, events }).is_err() {
            worker.live.fetch_sub(1, Ordering::SeqCst);
            return Err(AllWorkersFull);
        }
        Ok(receiver)
    }
}

struct Cached {
    model: Rc<LoadedModel>,
    grammar: Option<Rc<EventsGrammar>>,
    bytes: u64,
    last_used: Instant,
}

struct Worker {
    device: DeviceName,
    live: Arc<AtomicUsize>,
    cached: Arc<Mutex<Vec<String>>>,
    cache: HashMap<String, Cached>,
    cache_bytes: u64,
    sessions: Vec<Session>,
}

struct Session {
    model_id: String,
    model: Rc<LoadedModel>,
    events: mpsc::UnboundedSender<SessionEvent>,
    rng: Rng,
    validated: ValidatedRequest,
    state: LstmState,
    next_input: i64,
    decoding: Decoding,
    steps: u32,
    peak_batch: usize,
    notes: Vec<GeneratedNote>,
    opened: Instant,
    _hold: Option<ModelUse>,
}

enum Decoding {
    Events { grammar: Rc<EventsGrammar>, decoder: Box<EventsDecoder> },
    NoteChord { mask: Vec<f32>, tokens: Vec<i64>, target: u32 },
}

impl Worker {
    fn run(mut self, commands: std_mpsc::Receiver<Start>) {
        let _no_grad = tch::no_grad_guard();
        loop {
            if self.sessions.is_empty() {
                match commands.recv() {
                    Ok(start) => self.admit(start),
                    Err(_) => return,
                }
            }
            while let Ok(start) = commands.try_recv() {
                self.admit(start);
            }
            self.sessions.retain(|session| {
                let gone = session.events.is_closed();
                if gone {
                    self.live.fetch_sub(1, Ordering::SeqCst);
                }
                !gone
            });
            let mut models: Vec<String> = self.sessions.iter().map(|s| s.model_id.clone()).collect();
            models.sort();
            models.dedup();
            for model in models {
                self.step(&model);
            }
            let (done, running): (Vec<Session>, Vec<Session>) =
                std::mem::take(&mut self.sessions).into_iter().partition(Session::finished);
            self.sessions = running;
            for session in done {
                let piece = session.piece();
                let _ = session.events.send(SessionEvent::Finished(piece));
                self.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn admit(&mut self, Start { request, events }: Start) {
        match self.open(request, &events) {
            Ok(Some(session)) => self.sessions.push(session),
            Ok(None) => {
                self.live.fetch_sub(1, Ordering::SeqCst);
            }
            Err(error) => {
                let _ = events.send(SessionEvent::Failed(format!("{error:#}")));
                self.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// A session ready to step, or `None` when the piece was made at once (offline families).
    fn open(
        &mut self,
        request: SessionRequest,
        events: &mpsc::UnboundedSender<SessionEvent>,
    ) -> anyhow::Result<Option<Session>> {
        let (model, grammar) = self.load(&request.model_id, &request.model_dir)?;
        let validated = request.validated;
        let mut rng = Rng::new(validated.seed);
        let Net::Token(net) = &model.net else {
            let steps = match validated.length {
                Length::Notes(n) | Length::Tokens(n) => n,
                _ => anyhow::bail!("this model takes a length in notes or tokens"),
            };
            let mut score = offline::generate(&model, steps, &validated.sampling, &mut rng)?;
            apply_program_and_tempo(&mut score, &validated);
            let _ = events.send(SessionEvent::Finished(piece_of(&score, steps)));
            return Ok(None);
        };
        let (decoding, primer_ids, first) = match (&model.meta.representation, grammar) {
            (Representation::Events { config, .. }, Some(grammar)) => {
                let bar =
                    grammar.id_of(Token::Bar).ok_or_else(|| anyhow::anyhow!("the vocabulary has no Bar"))?;
                let mut decoder = EventsDecoder::new(validated.clone(), request.parts.clone(), &grammar);
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
        let state = prime(net, primer_ids, self.device.0);
        Ok(Some(Session {
            model_id: request.model_id,
            model: model.clone(),
            events: events.clone(),
            rng,
            validated,
            state,
            next_input: first,
            decoding,
            steps: 0,
            peak_batch: 0,
            notes: Vec::new(),
            opened: Instant::now(),
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
        let model = Rc::new(LoadedModel::load(dir, self.device.0)?);
        let bytes = model.vs.variables().values().map(|t| t.numel() as u64 * 4).sum();
        let grammar = match &model.meta.representation {
            Representation::Events { config, vocabulary, .. } => {
                Some(Rc::new(EventsGrammar::new(vocabulary, config)))
            }
            _ => None,
        };
        self.evict_for(bytes);
        self.cache.insert(
            id.to_owned(),
            Cached { model: model.clone(), grammar: grammar.clone(), bytes, last_used: Instant::now() },
        );
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = self.cache.keys().cloned().collect();
        Ok((model, grammar))
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

    /// One batched step of every live session of `model`.
    fn step(&mut self, model: &str) {
        let indices: Vec<usize> =
            (0..self.sessions.len()).filter(|&i| self.sessions[i].model_id == model).collect();
        let Some(&first) = indices.first() else { return };
        let loaded = self.sessions[first].model.clone();
        let Net::Token(net) = &loaded.net else { return };
        for chunk in indices.chunks(*BUCKETS.last().expect("buckets are not empty")) {
            step_chunk(net, &mut self.sessions, chunk, self.device.0);
        }
    }
}

/// Runs the primer through the network from a zero state; the state after it.
fn prime(net: &TokenNet, ids: &[i64], device: tch::Device) -> LstmState {
    let mut state = net.zero_state(1, device);
    for &id in ids {
        let input = Tensor::from_slice(&[id]).to_device(device);
        state = net.step(&input, &state).1;
    }
    state
}

fn bucket(n: usize) -> usize {
    BUCKETS.iter().copied().find(|&size| size >= n).unwrap_or(n)
}

fn step_chunk(net: &TokenNet, sessions: &mut [Session], chunk: &[usize], device: tch::Device) {
    let padded = bucket(chunk.len());
    let mut ids: Vec<i64> = chunk.iter().map(|&i| sessions[i].next_input).collect();
    ids.resize(padded, 0);
    let zeros = |like: &Tensor| {
        let size = like.size();
        Tensor::zeros([size[0], (padded - chunk.len()) as i64, size[2]], (TensorKind::Float, device))
    };
    let first = &sessions[chunk[0]].state;
    let mut hs: Vec<Tensor> = chunk.iter().map(|&i| sessions[i].state.h.shallow_clone()).collect();
    let mut cs: Vec<Tensor> = chunk.iter().map(|&i| sessions[i].state.c.shallow_clone()).collect();
    if padded > chunk.len() {
        hs.push(zeros(&first.h));
        cs.push(zeros(&first.c));
    }
    let state = LstmState { h: Tensor::cat(&hs, 1), c: Tensor::cat(&cs, 1) };
    let input = Tensor::from_slice(&ids).to_device(device);
    let (logits, next) = net.step(&input, &state);
    for (row, &index) in chunk.iter().enumerate() {
        let session = &mut sessions[index];
        session.peak_batch = session.peak_batch.max(chunk.len());
        session.state = LstmState { h: next.h.narrow(1, row as i64, 1), c: next.c.narrow(1, row as i64, 1) };
        let mask = session.mask();
        let vocabulary = mask.len() as i64;
        let masked = logits.narrow(0, row as i64, 1)
            + Tensor::from_slice(&mask).view([1, vocabulary]).to_device(device);
        let id = sample(&masked, &session.validated.sampling, std::slice::from_mut(&mut session.rng))[0];
        session.accept(id);
    }
}

impl Session {
    fn mask(&self) -> Vec<f32> {
        match &self.decoding {
            Decoding::Events { grammar, decoder } => decoder.mask(grammar),
            Decoding::NoteChord { mask, .. } => mask.clone(),
        }
    }

    fn accept(&mut self, id: i64) {
        self.steps += 1;
        self.next_input = id;
        match &mut self.decoding {
            Decoding::Events { grammar, decoder } => {
                let token = grammar.token(id);
                let mut completed: Vec<GeneratedNote> =
                    token.and_then(|t| decoder.accept(t, grammar)).into_iter().collect();
                if self.steps >= 2 * MAX_TOKENS && !decoder.done() {
                    completed.extend(decoder.finish(grammar));
                }
                if decoder.done() {
                    completed.extend(decoder.finish(grammar));
                }
                if !completed.is_empty() {
                    self.notes.extend_from_slice(&completed);
                    let _ = self.events.send(SessionEvent::Notes(completed));
                }
            }
            Decoding::NoteChord { tokens, .. } => tokens.push(id),
        }
    }

    fn finished(&self) -> bool {
        match &self.decoding {
            Decoding::Events { decoder, .. } => decoder.done(),
            Decoding::NoteChord { tokens, target, .. } => tokens.len() as u32 >= *target,
        }
    }

    fn piece(&self) -> Piece {
        match (&self.decoding, &self.model.meta.representation) {
            (Decoding::Events { grammar, decoder }, _) => {
                let per_beat = grammar.grid_per_beat();
                Piece {
                    notes: decoder.closed(self.notes.clone(), grammar),
                    tempos: decoder.tempos().iter().map(|&(at, bpm)| (at as f64 / per_beat, bpm)).collect(),
                    meters: decoder.meters().iter().map(|&(at, n, d)| (at as f64 / per_beat, n, d)).collect(),
                    tokens: self.steps,
                    peak_batch: self.peak_batch,
                    generated_in: self.opened.elapsed(),
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
                    ..piece_of(&score, self.steps)
                }
            }
            _ => piece_of(&Score::of_parts(480, vec![]), self.steps),
        }
    }
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
