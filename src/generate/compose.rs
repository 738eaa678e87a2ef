//! From a request to a stored composition: resolve the model and primer, check the
//! model can honour the request, start an engine session, and keep what it made.
//! The REST endpoint and the WebSocket stream both go through [`Composer`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::admission::{Refusal, Refused};
use super::decoder::EventsGrammar;
use super::engine::{Engine, SessionControl, SessionEvent, SessionFailure, SessionRequest};
use super::request::{
    Control, GenerateRequest, GivenSource, Invalid, Length, MAX_PRIMER_MIDI_BYTES, Primer, PrimerNote,
    ValidatedRequest,
};
use super::{GeneratedNote, Piece};
use crate::analysis::AnalysisNote;
use crate::analysis::originality::{CopyGuard, CopyKind, CopyReport, OriginalityIndex};
use crate::analysis::statistics::PieceStatistics;
use crate::datasets::{BlobStore, Datasets};
use crate::midi::{self, Note, Part, Score};
use crate::model::artifact::{DataSource, Representation, read_originality};
use crate::model::registry::{ModelRegistry, ModelUse};
use crate::model::sampling::Rng;
use crate::shared::{LockSurvivingPanics, rfc3339, sha256_hex};
use crate::store::{CompositionDeletion, CompositionRow, Store};

/// A generated piece, as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"composition_id": "3f2a9c1e-5b7d-4e8a-9c0f-1d2e3f4a5b6c", "model": "default", "seed": 7,
    "notes": [{"pitch": 62, "velocity": 90, "program": 0, "start_beat": 0.0, "duration_beats": 1.0,
        "start_seconds": 0.0, "duration_seconds": 0.625}],
    "stats": {"notes": 1, "tokens": 6, "seconds": 0.625, "elapsed_ms": 4, "tokens_per_second": 1500.0, "peak_batch": 1},
    "midi_url": "/v1/compositions/3f2a9c1e-5b7d-4e8a-9c0f-1d2e3f4a5b6c/midi", "created_at": "2026-11-22T03:00:00.000Z"}))]
pub struct Composition {
    pub composition_id: String,
    /// The model that made it.
    pub model: String,
    /// The seed used (the request's, or the one drawn for it).
    pub seed: u64,
    pub notes: Vec<GeneratedNote>,
    pub stats: Stats,
    /// Where the MIDI file downloads from.
    #[schema(example = "/v1/compositions/3f2a…/midi")]
    pub midi_url: String,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({"notes": 128, "tokens": 450, "seconds": 41.25, "elapsed_ms": 310,
    "tokens_per_second": 1451.6, "peak_batch": 3}))]
pub struct Stats {
    pub notes: usize,
    /// Model steps taken.
    pub tokens: u32,
    /// Length of the music.
    pub seconds: f64,
    /// Wall time from the request to the last note sampled (pacing not included).
    pub elapsed_ms: u64,
    pub tokens_per_second: f64,
    /// Most sessions stepped together while this one ran.
    pub peak_batch: usize,
    /// The longest runs of consecutive notes copied from one of the model's
    /// training pieces (exactly, transposed, in onset order), each with the piece
    /// and bar it comes from; null when the model has no originality index. A
    /// primer is not part of the composition, so never counted.
    #[serde(default)]
    pub originality: Option<CopyReport>,
    /// The copy limit the request set (`max_copied_notes`), when it set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_copied_notes: Option<u32>,
    /// Musical statistics of the piece (MGEval-style); null without notes.
    #[serde(default)]
    pub statistics: Option<PieceStatistics>,
}

/// A part a stream plays, as its `start` message lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"name": "Alto", "program": 52}))]
pub struct StreamPart {
    /// Its name, as its notes carry it and a `control` names it; null for a part
    /// the model knows no name for.
    pub name: Option<String>,
    /// The General MIDI program it starts on.
    pub program: u8,
}

/// A session under way.
pub struct OpenSession {
    pub model: String,
    /// The parts the piece is written in, in order (a note's `part.index` is its
    /// place here); none for a model without parts.
    pub parts: Vec<StreamPart>,
    pub validated: ValidatedRequest,
    pub events: mpsc::UnboundedReceiver<SessionEvent>,
    request: GenerateRequest,
    /// The model's originality index, which the piece is looked up in.
    index: Option<Arc<OriginalityIndex>>,
    /// The part the user gave, whose notes are not the model's to count as copies.
    given_part: Option<u8>,
    /// Where the listener's controls go to the engine's session.
    controls: mpsc::UnboundedSender<SessionControl>,
    /// The model stays undeletable until the client is done (realtime pacing
    /// outlasts the engine's session): one hold, shared with the session.
    _hold: Arc<ModelUse>,
}

impl OpenSession {
    /// Changes the rest of the piece: sampling, key, range, polyphony, tempo,
    /// instrument, and each part's instrument, range and polyphony. Refused, naming
    /// the field, as the same request would be; the piece plays on either way. The
    /// stored request then holds the settings the piece ended with.
    pub fn control(&mut self, control: &Control) -> Result<(), Invalid> {
        let names: Vec<String> = self.parts.iter().filter_map(|part| part.name.clone()).collect();
        let (request, validated) = self.request.controlled(control, self.validated.seed, &names)?;
        let _ = self.controls.send(SessionControl::Settings(Box::new(validated)));
        self.request = request;
        Ok(())
    }

    /// Ends the piece at its next bar line; it is stored as any other.
    pub fn stop(&self) {
        let _ = self.controls.send(SessionControl::Stop);
    }
}

#[derive(Clone)]
pub struct Composer {
    pub engine: Engine,
    pub models: ModelRegistry,
    pub store: Store,
    pub datasets: Datasets,
    pub indexes: Indexes,
}

/// The originality indexes of the models lately used, built once from each
/// artifact's `originality.json` (13 MB in memory for the bundled default's
/// 100,393 training notes) and kept for the [`Indexes::KEPT`] latest.
#[derive(Clone, Default)]
pub struct Indexes {
    latest: Arc<Mutex<Vec<CachedIndex>>>,
    /// Held while an index is built, so that a crowd of first requests for a
    /// model builds it once instead of once each.
    building: Arc<tokio::sync::Mutex<()>>,
}

/// An artifact's directory and its index.
type CachedIndex = (PathBuf, Arc<OriginalityIndex>);

impl Indexes {
    const KEPT: usize = 4;

    /// The index of the artifact in `dir`; None when it has none.
    pub async fn of(&self, dir: &Path) -> anyhow::Result<Option<Arc<OriginalityIndex>>> {
        if let Some(index) = self.cached(dir) {
            return Ok(Some(index));
        }
        let _building = self.building.lock().await;
        if let Some(index) = self.cached(dir) {
            return Ok(Some(index));
        }
        let owned = dir.to_owned();
        let Some(index) = tokio::task::spawn_blocking(move || read_originality(&owned)).await?? else {
            return Ok(None);
        };
        let index = Arc::new(index);
        let mut latest = self.latest.lock_surviving_panics();
        latest.retain(|(at, _)| at != dir);
        latest.insert(0, (dir.to_owned(), index.clone()));
        latest.truncate(Self::KEPT);
        Ok(Some(index))
    }

    fn cached(&self, dir: &Path) -> Option<Arc<OriginalityIndex>> {
        let latest = self.latest.lock_surviving_panics();
        latest.iter().find(|(at, _)| at == dir).map(|(_, index)| index.clone())
    }
}

/// Which kinds of copy `max_copied_notes` guards against. An exact copy is a
/// transposed one (by 0 semitones), so guarding transposed runs guards exact ones.
pub const GUARDED: [CopyKind; 2] = [CopyKind::Transposed, CopyKind::OnsetOrder];

/// The notes the model wrote, which a copy lookup reads: all but a given part's (a
/// primer is never in the composition).
fn written(notes: &[GeneratedNote], given_part: Option<u8>) -> Vec<GeneratedNote> {
    let is_given =
        |note: &GeneratedNote| given_part.is_some_and(|given| note.part.is_some_and(|p| p.index == given));
    notes.iter().filter(|note| !is_given(note)).copied().collect()
}

/// Why a composition could not be made, stored or read. The HTTP layer maps each
/// to its status (`api::generate`).
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A request field the model cannot honour, or that names nothing there is.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// No place for the session: the queue is full, or it waited its longest.
    #[error("{}", busy_message(.0))]
    Busy(Refused),
    /// The session's worker failed; it restarts and reloads its models.
    #[error(transparent)]
    Failed(#[from] SessionFailure),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for ComposeError {
    fn from(Invalid { field, message }: Invalid) -> ComposeError {
        ComposeError::Invalid { field, message }
    }
}

fn busy_message(refused: &Refused) -> String {
    let why = match refused.reason {
        Refusal::QueueFull => "every generation worker is full and the queue too",
        Refusal::WaitedTooLong => "every generation worker stayed full for as long as a request may wait",
        Refusal::NoWorker => "no generation worker is running",
    };
    format!("{why}; try again in {} s", refused.retry_after.as_secs())
}

fn invalid(field: &str, message: impl Into<String>) -> ComposeError {
    ComposeError::Invalid { field: field.to_owned(), message: message.into() }
}

impl Composer {
    /// Compositions live in the datasets' blob store, under the same write lock.
    fn blobs(&self) -> &BlobStore {
        self.datasets.blobs()
    }

    /// Checks the request against its limits and the model, and starts a session.
    pub async fn start(&self, request: GenerateRequest) -> Result<OpenSession, ComposeError> {
        let mut validated = request.check(rand_seed())?;
        let model = match &request.model {
            Some(model) => model.clone(),
            None => self.models.default_id().await?,
        };
        let Some((dir, row)) = self.models.path(&model).await? else {
            return Err(invalid("model", format!("no model `{model}`")));
        };
        let meta = self
            .models
            .meta(&dir)
            .await
            .map_err(|error| invalid("model", format!("model `{model}` cannot be read: {error:#}")))?;
        supports(&meta.representation, &validated)?;
        let parts = super::parts::for_model(&meta.representation, &validated)?;
        let given = match (&validated.given, &meta.representation) {
            (Some(given), Representation::Events { config, vocabulary, .. }) => {
                let (score, field) = self.given_score(&given.source).await?;
                let grammar = EventsGrammar::new(vocabulary, config);
                let (which, decoding) = (given.part.clone(), given.decoding);
                Some(super::given::prepare(
                    &mut validated,
                    &score,
                    &which,
                    decoding,
                    &parts,
                    &grammar,
                    field,
                )?)
            }
            _ => None,
        };
        let index = self.indexes.of(&dir).await?;
        let copy_guard = match (validated.max_copied_notes, &index) {
            (None, _) => None,
            (Some(max), Some(index)) => Some(CopyGuard::new(index.clone(), max, &GUARDED)),
            (Some(_), None) => {
                return Err(invalid(
                    "max_copied_notes",
                    format!("model `{model}` has no originality index to hold a copy limit to"),
                ));
            }
        };
        let primer = match &request.primer {
            Some(primer) => Some(self.primer(primer, &meta.data, validated.seed).await?),
            None => None,
        };
        let being_deleted = || invalid("model", format!("model `{model}` is being deleted"));
        let trained = row.is_some();
        // The session and its client share the node's hold of the model (a
        // database row), released when the last of its users ends.
        let hold = self.models.hold_in_use(&model, trained).await?.ok_or_else(being_deleted)?;
        let given_part = given.as_ref().map(|given| given.part);
        let stream_parts = parts
            .iter()
            .map(|part| StreamPart { name: part.declared.name.clone(), program: part.program })
            .collect();
        let (controls, controlled) = mpsc::unbounded_channel();
        let span = tracing::info_span!("session", id = %uuid::Uuid::new_v4(), model = %model);
        let session = SessionRequest {
            model_id: model.clone(),
            model_dir: dir,
            validated: validated.clone(),
            parts,
            given,
            primer,
            copy_guard,
            hold: Some(hold.clone()),
            controls: Some(controlled),
            span,
        };
        let events = self.engine.enqueue(session).await.map_err(ComposeError::Busy)?;
        Ok(OpenSession {
            model,
            parts: stream_parts,
            validated,
            events,
            request,
            index,
            given_part,
            controls,
            _hold: hold,
        })
    }

    /// Stores the finished piece, the MIDI blob first, then the row; returns the
    /// composition and its MIDI file.
    pub async fn store_piece(
        &self,
        session: &OpenSession,
        piece: Piece,
    ) -> Result<(Composition, Vec<u8>), ComposeError> {
        // The engine's time (the client's pacing is not generation time).
        let elapsed = piece.generated_in;
        let mut score = piece.score();
        score.key_signatures.extend(session.validated.key_signature);
        let midi = midi::write(&score);
        let hash = sha256_hex(&midi);
        // The blob and its row are written under the lock deletions take, so a
        // deletion of an identical piece never removes the blob this row needs.
        let _writes = self.blobs().lock_writes().await;
        // Marked first, so that a collector on any node leaves it be (`store::blobs`).
        self.store.mark_blobs(std::slice::from_ref(&hash), crate::store::now_ms()).await?;
        self.blobs().put(&hash, midi.clone()).await?;
        let stats = Stats {
            notes: piece.notes.len(),
            tokens: piece.tokens,
            seconds: piece.seconds(),
            elapsed_ms: elapsed.as_millis() as u64,
            tokens_per_second: f64::from(piece.tokens) / elapsed.as_secs_f64().max(1e-9),
            peak_batch: piece.peak_batch,
            originality: session
                .index
                .as_ref()
                .map(|index| index.lookup(&analysis_notes(&written(&piece.notes, session.given_part)), &[])),
            max_copied_notes: session.validated.max_copied_notes,
            statistics: PieceStatistics::of(&analysis_notes(&piece.notes)),
        };
        let row = CompositionRow {
            id: uuid::Uuid::new_v4().to_string(),
            model_id: session.model.clone(),
            seed: session.validated.seed,
            request: serde_json::to_string(&session.request).map_err(anyhow::Error::from)?,
            notes: serde_json::to_string(&piece.notes).map_err(anyhow::Error::from)?,
            stats: serde_json::to_string(&stats).map_err(anyhow::Error::from)?,
            midi_sha256: hash,
            created_at: 0,
        };
        let row = self.store.insert_composition(row).await?;
        Ok((composition_of(&row)?, midi))
    }

    /// The newest `limit` compositions.
    pub async fn recent(&self, limit: i64) -> Result<Vec<Composition>, ComposeError> {
        let rows = self.store.compositions(limit).await?;
        Ok(rows.iter().map(composition_of).collect::<anyhow::Result<_>>()?)
    }

    pub async fn composition(&self, id: &str) -> Result<Option<(Composition, String)>, ComposeError> {
        let Some(row) = self.store.composition(id).await? else { return Ok(None) };
        Ok(Some((composition_of(&row)?, row.midi_sha256)))
    }

    /// Deletes the composition, and its MIDI file unless another composition or a
    /// dataset file is the same bytes. False when there is no such composition.
    pub async fn delete(&self, id: &str) -> Result<bool, ComposeError> {
        let deleted = {
            let _writes = self.blobs().lock_writes().await;
            self.store.delete_composition(id).await?
        };
        let CompositionDeletion::Deleted { .. } = deleted else { return Ok(false) };
        self.datasets.collect_garbage().await;
        Ok(true)
    }

    pub async fn midi(&self, hash: &str) -> Result<Vec<u8>, ComposeError> {
        Ok(self.blobs().get(hash).await?)
    }

    async fn primer(
        &self,
        primer: &Primer,
        trained_on: &DataSource,
        seed: u64,
    ) -> Result<Score, ComposeError> {
        match primer {
            Primer::Notes(notes) => Ok(score_of_notes(notes)),
            Primer::MidiBase64(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|error| invalid("primer.midi_base64", format!("not base64: {error}")))?;
                if bytes.len() > MAX_PRIMER_MIDI_BYTES {
                    return Err(invalid("primer.midi_base64", "must decode to at most 1 MiB"));
                }
                // The verdict and reason a dataset upload gives the same file, read
                // off the async runtime (a primer can be a megabyte of MIDI).
                let read = tokio::task::spawn_blocking(move || midi::read_usable(&bytes, false));
                read.await
                    .map_err(anyhow::Error::from)?
                    .map_err(|unusable| invalid("primer.midi_base64", unusable.to_string()))
            }
            Primer::CompositionId(id) => {
                let Some((_, hash)) = self.composition(id).await? else {
                    return Err(invalid("primer.composition_id", format!("no composition `{id}`")));
                };
                let bytes = self.midi(&hash).await?;
                Ok(midi::read(&bytes).map_err(anyhow::Error::from)?)
            }
            Primer::Corpus(_) => self.corpus_window(trained_on, seed).await,
        }
    }

    /// The given part as a one-part score, and the field its notes came from.
    async fn given_score(&self, source: &GivenSource) -> Result<(Score, &'static str), ComposeError> {
        match source {
            GivenSource::Notes(notes) => Ok((score_of_notes(notes), "given.notes")),
            GivenSource::Midi { base64, track } => {
                let field = "given.midi_base64";
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(base64.trim())
                    .map_err(|error| invalid(field, format!("not base64: {error}")))?;
                if bytes.len() > MAX_PRIMER_MIDI_BYTES {
                    return Err(invalid(field, "must decode to at most 1 MiB"));
                }
                let read = tokio::task::spawn_blocking(move || midi::read(&bytes));
                let mut score = read
                    .await
                    .map_err(anyhow::Error::from)?
                    .map_err(|error| invalid(field, format!("not a MIDI file fugue can read: {error}")))?;
                score.parts.retain(|part| !part.is_drum && !part.notes.is_empty());
                if *track >= score.parts.len() {
                    return Err(invalid(
                        "given.track",
                        format!(
                            "the file has {} tracks with pitched notes; give 0 to {}",
                            score.parts.len(),
                            score.parts.len().saturating_sub(1)
                        ),
                    ));
                }
                score.parts = vec![score.parts.swap_remove(*track)];
                Ok((score, field))
            }
        }
    }

    /// Eight bars (32 beats) from a random file of the model's training dataset.
    async fn corpus_window(&self, trained_on: &DataSource, seed: u64) -> Result<Score, ComposeError> {
        let unavailable =
            || invalid("primer.corpus", "the model's training corpus is not a dataset on this server");
        let id = trained_on.dataset_id().ok_or_else(unavailable)?;
        let mut rng = Rng::new(seed);
        let pick = |count: usize| (rng.next_u64() % count as u64) as usize;
        let bytes = self.datasets.one_file(id, pick).await?.ok_or_else(unavailable)?;
        let cut = tokio::task::spawn_blocking(move || {
            let score = midi::read(&bytes)?;
            let beat = u64::from(score.ticks_per_beat.max(1));
            let bars = score.end_tick() / (4 * beat);
            let from = (rng.next_u64() % bars.saturating_sub(8).max(1)) * 4 * beat;
            anyhow::Ok(window(&score, from, from + 32 * beat))
        });
        Ok(cut.await.map_err(anyhow::Error::from)??)
    }
}

/// The notes of `score` starting in [from, to), moved to start at 0.
fn window(score: &Score, from: u64, to: u64) -> Score {
    let mut cut = score.clone();
    for part in &mut cut.parts {
        part.notes.retain(|note| (from..to).contains(&note.start));
        for note in &mut part.notes {
            note.start -= from;
        }
    }
    cut.tempos.retain(|t| t.tick <= from);
    for tempo in &mut cut.tempos {
        tempo.tick = 0;
    }
    cut.tempos.dedup_by_key(|t| t.tick);
    cut.time_signatures.clear();
    cut.key_signatures.clear();
    cut
}

fn score_of_notes(notes: &[PrimerNote]) -> Score {
    let ticks = |beats: f64| (beats * 480.0).round() as u64;
    let mut notes: Vec<Note> = notes
        .iter()
        .map(|note| Note {
            pitch: note.pitch,
            velocity: note.velocity.unwrap_or(80),
            start: ticks(note.start_beat),
            duration: ticks(note.duration_beats).max(1),
        })
        .collect();
    notes.sort_by_key(|note| (note.start, note.pitch));
    Score::of_parts(480, vec![Part::new(0, 0, notes)])
}

/// Refuses what the model's representation cannot do, naming the field.
fn supports(representation: &Representation, validated: &ValidatedRequest) -> Result<(), ComposeError> {
    let (kind, constraints, lengths): (&str, &[&str], &[&str]) = match representation {
        Representation::Events { .. } => return Ok(()),
        Representation::NoteChord { .. } => ("note-chord", &["pitch_range", "key"], &["notes", "tokens"]),
        Representation::MelodyChords { .. } => ("melody-chords", &[], &["notes", "tokens"]),
        Representation::Pianoroll { .. } => ("pianoroll", &[], &["notes", "tokens"]),
    };
    if let Some(field) = validated.constrained.iter().find(|field| !constraints.contains(field)) {
        return Err(invalid(
            field,
            format!("a {kind} model cannot honour `{field}`; use an events model (the `fugue` preset)"),
        ));
    }
    let length = match validated.length {
        Length::Notes(_) => "notes",
        Length::Tokens(_) => "tokens",
        Length::Bars(_) => "bars",
        Length::Seconds(_) => "seconds",
        Length::Endless(_) => "endless",
    };
    if !lengths.contains(&length) {
        return Err(invalid(
            &format!("length.{length}"),
            format!("a {kind} model takes its length in notes or tokens"),
        ));
    }
    Ok(())
}

fn composition_of(row: &CompositionRow) -> anyhow::Result<Composition> {
    Ok(Composition {
        composition_id: row.id.clone(),
        model: row.model_id.clone(),
        seed: row.seed,
        notes: serde_json::from_str(&row.notes)?,
        stats: serde_json::from_str(&row.stats)?,
        midi_url: format!("/v1/compositions/{}/midi", row.id),
        created_at: rfc3339(row.created_at),
    })
}

/// Generated notes as the analysis reads them.
pub fn analysis_notes(notes: &[GeneratedNote]) -> Vec<AnalysisNote> {
    notes
        .iter()
        .map(|note| AnalysisNote {
            pitch: note.pitch,
            program: note.program,
            start_beat: note.start_beat,
            duration_beats: note.duration_beats,
        })
        .collect()
}

/// A seed for requests that bring none.
fn rand_seed() -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}
