//! Examining each file and summing up the ingest report.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Upload;
use crate::midi::{self, Part, Score};
use crate::repr::events::{CorpusPart, EventsConfig};
use crate::repr::{events, note_chord, pianoroll};
use crate::shared::sha256_hex;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestReport {
    pub accepted: Vec<AcceptedFile>,
    pub rejected: Vec<Rejection>,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AcceptedFile {
    /// As uploaded; files from a zip are named `archive.zip/path/in/archive.mid`.
    #[schema(example = "chorales.zip/bwv1.6.mid")]
    pub file: String,
    pub sha256: String,
    pub notes: u64,
    pub parts: u64,
    pub duration_seconds: f64,
    /// Lowest and highest pitch, MIDI numbers.
    #[schema(example = json!([43, 79]))]
    pub pitch_range: [u8; 2],
    /// Each part in file order: a track's notes on one channel with one program.
    /// (Reports from before this field show none.)
    #[serde(default)]
    pub part_list: Vec<PartSummary>,
}

/// One part of a file as read: four voices that all sing are four parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Soprano", "program": 52, "instrument": "Choir Aahs", "channel": 0,
    "drums": false, "notes": 52, "pitch_range": [60, 74]}))]
pub struct PartSummary {
    /// The track's name, when it has one.
    pub name: Option<String>,
    /// General MIDI program, 0 to 127, and its instrument's name.
    pub program: u8,
    pub instrument: String,
    /// MIDI channel, 0 to 15 (9 is the drum channel).
    pub channel: u8,
    pub drums: bool,
    pub notes: u64,
    /// Lowest and highest pitch (drum sounds, for a drum part).
    pub pitch_range: [u8; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rejection {
    #[schema(example = "notes.txt")]
    pub file: String,
    #[schema(example = "not a MIDI file (no MThd header)")]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    pub files: u64,
    pub notes: u64,
    pub parts: u64,
    pub duration_seconds: f64,
    /// Lowest and highest pitch over all accepted files.
    pub pitch_range: Option<[u8; 2]>,
    /// Every distinct part (name, program, drums) of the accepted files, the most
    /// common first: what a `fugue` model trained on them can offer.
    /// (Reports from before this field show none.)
    #[serde(default)]
    pub part_table: Vec<CorpusPart>,
    pub representations: RepresentationTotals,
}

/// Sequence lengths and vocabulary sizes each representation gives this corpus,
/// with its default settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepresentationTotals {
    /// `note-chord` tokens at 0.5 beat per step.
    pub note_chord_tokens: u64,
    pub note_chord_vocabulary: u64,
    /// `events` tokens on the 24-per-beat grid.
    pub events_tokens: u64,
    pub events_vocabulary: u64,
    /// The same with parts (`Part` tokens and a header declaring each file's parts),
    /// as the `fugue` preset trains when a file has more than one part.
    #[serde(default)]
    pub events_with_parts_tokens: u64,
    #[serde(default)]
    pub events_with_parts_vocabulary: u64,
    /// `pianoroll` frames on the quarter-note grid.
    pub pianoroll_frames: u64,
}

/// What one file adds to the corpus totals: its sequence lengths and its distinct
/// tokens (not every token: a file's summary is bounded by the vocabulary).
pub struct FileTokens {
    note_chord_count: u64,
    note_chord: HashSet<String>,
    events_count: u64,
    events: HashSet<events::Token>,
    events_with_parts_count: u64,
    events_with_parts: HashSet<events::Token>,
    parts: Vec<CorpusPart>,
    pianoroll_frames: u64,
}

pub struct Examined {
    pub file: AcceptedFile,
    pub tokens: FileTokens,
}

/// Examines every file, using every core; the outcomes keep the input order.
pub fn examine_all(candidates: &[Upload], include_drums: bool) -> Vec<Result<Examined, String>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = candidates.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = candidates
            .chunks(chunk)
            .map(|files| {
                scope.spawn(move || files.iter().map(|f| examine(f, include_drums)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("examining a file does not panic"))
            .collect()
    })
}

/// Reads one file; the error is the reason it is rejected.
fn examine(upload: &Upload, include_drums: bool) -> Result<Examined, String> {
    let score = midi::read_usable(&upload.bytes, include_drums).map_err(|error| error.to_string())?;
    let (low, high) = score.pitch_range().unwrap_or((0, 0));
    let file = AcceptedFile {
        file: upload.file_name.clone(),
        sha256: sha256_hex(&upload.bytes),
        notes: score.note_count() as u64,
        parts: score.parts.len() as u64,
        duration_seconds: score.seconds_at(score.end_tick()),
        pitch_range: [low, high],
        part_list: score.parts.iter().map(part_summary).collect(),
    };
    Ok(Examined { file, tokens: tokens_of(&score) })
}

fn part_summary(part: &Part) -> PartSummary {
    let pitches = part.notes.iter().map(|note| note.pitch);
    PartSummary {
        name: part.name.clone(),
        program: part.program,
        instrument: if part.is_drum {
            "Drums".to_owned()
        } else {
            midi::program_name(part.program).to_owned()
        },
        channel: part.channel,
        drums: part.is_drum,
        notes: part.notes.len() as u64,
        pitch_range: [pitches.clone().min().unwrap_or(0), pitches.max().unwrap_or(0)],
    }
}

fn tokens_of(score: &Score) -> FileTokens {
    let note_chord = note_chord::encode(score, &note_chord::NoteChordConfig::default());
    let events = events::encode(score, &events::EventsConfig::default());
    let with_parts = EventsConfig { max_parts: events::PART_LIMIT, ..EventsConfig::default() };
    let events_with_parts = events::encode(score, &with_parts);
    FileTokens {
        note_chord_count: note_chord.len() as u64,
        note_chord: note_chord.into_iter().collect(),
        events_count: events.len() as u64,
        events: events.into_iter().collect(),
        events_with_parts_count: events_with_parts.len() as u64,
        events_with_parts: events_with_parts.into_iter().collect(),
        parts: events::file_parts(score),
        pianoroll_frames: pianoroll::encode(score, pianoroll::Grid::Quarter).len() as u64,
    }
}

pub fn totals(accepted: &[AcceptedFile], tokens: &[FileTokens]) -> Totals {
    let note_chord: HashSet<&String> = tokens.iter().flat_map(|t| &t.note_chord).collect();
    let event_kinds: HashSet<&events::Token> = tokens.iter().flat_map(|t| &t.events).collect();
    let with_parts_kinds: HashSet<&events::Token> =
        tokens.iter().flat_map(|t| &t.events_with_parts).collect();
    let pitch_range =
        accepted.iter().map(|file| file.pitch_range).reduce(|a, b| [a[0].min(b[0]), a[1].max(b[1])]);
    Totals {
        files: accepted.len() as u64,
        notes: accepted.iter().map(|file| file.notes).sum(),
        parts: accepted.iter().map(|file| file.parts).sum(),
        duration_seconds: accepted.iter().map(|file| file.duration_seconds).sum(),
        pitch_range,
        part_table: events::merge_part_tables(tokens.iter().map(|t| t.parts.clone())),
        representations: RepresentationTotals {
            note_chord_tokens: tokens.iter().map(|t| t.note_chord_count).sum(),
            note_chord_vocabulary: note_chord.len() as u64,
            events_tokens: tokens.iter().map(|t| t.events_count).sum(),
            events_vocabulary: event_kinds.len() as u64,
            events_with_parts_tokens: tokens.iter().map(|t| t.events_with_parts_count).sum(),
            events_with_parts_vocabulary: with_parts_kinds.len() as u64,
            pianoroll_frames: tokens.iter().map(|t| t.pianoroll_frames).sum(),
        },
    }
}
