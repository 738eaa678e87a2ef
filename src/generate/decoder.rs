//! Decoding `events` tokens one at a time under the request's constraints.
//!
//! [`EventsDecoder`] knows where it is (bar, position, the note being written) and
//! says, before every step, which tokens may come next: the grammar of the
//! representation (a `Vel` after a `Pitch`, positions moving forward within the
//! bar, ...) intersected with the musical controls (pitches of the key and range,
//! no new note past the polyphony limit, no tempo or meter change when fixed, a
//! bar line to end on). The model only ever chooses among allowed tokens, so the
//! constraints hold by construction rather than by filtering afterwards.

use std::collections::HashMap;

use crate::analysis::originality::{CopyGuard, PitchSet};
use crate::generate::given::GivenPart;
use crate::generate::request::{Length, ValidatedRequest};
use crate::generate::{GeneratedNote, NotePart};
use crate::repr::Vocabulary;
use crate::repr::events::{EventsConfig, PartName, PartSpec, Token, bar_units};

/// The vocabulary's tokens, parsed once per model.
#[derive(Debug)]
pub struct EventsGrammar {
    tokens: Vec<Option<Token>>,
    /// Each token's id: asked at every forced step and for every given note.
    ids: HashMap<Token, i64>,
    config: EventsConfig,
}

impl EventsGrammar {
    pub fn new(vocabulary: &Vocabulary, config: &EventsConfig) -> EventsGrammar {
        let tokens = (0..vocabulary.len() as u32)
            .map(|id| vocabulary.token(id).and_then(|text| text.parse().ok()))
            .collect::<Vec<Option<Token>>>();
        // The first id of a token, should a vocabulary hold one twice.
        let mut ids = HashMap::new();
        for (id, token) in tokens.iter().enumerate().rev() {
            if let Some(token) = token {
                ids.insert(*token, id as i64);
            }
        }
        EventsGrammar { tokens, ids, config: config.clone() }
    }

    pub fn id_of(&self, token: Token) -> Option<i64> {
        self.ids.get(&token).copied()
    }

    pub fn token(&self, id: i64) -> Option<Token> {
        usize::try_from(id).ok().and_then(|id| self.tokens.get(id).copied().flatten())
    }

    pub fn config(&self) -> &EventsConfig {
        &self.config
    }

    /// Grid units per beat.
    pub fn grid_per_beat(&self) -> f64 {
        f64::from(self.config.grid_per_beat.max(1))
    }
}

/// One part of a piece being written by a model with parts: what the header
/// declares it as (one of the model's parts), and what the request asks of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPart {
    pub declared: PartSpec,
    /// The program of its track in the MIDI file (the request's, else the model's).
    pub program: u8,
    /// 128 flags: may this pitch sound in this part.
    pub pitches: [bool; 128],
    pub max_polyphony: Option<u8>,
}

impl PlannedPart {
    fn note_part(&self, index: u8) -> NotePart {
        NotePart { index, name: self.declared.name.as_deref().and_then(PartName::new) }
    }
}

/// A note whose duration tokens are still coming.
#[derive(Debug, Clone, Copy)]
struct Pending {
    pitch: u8,
    velocity: u8,
    /// Grid units from the start of the piece.
    start: u64,
    duration: u64,
    part: Option<u8>,
}

/// Where a piece being generated stands.
#[derive(Debug, Clone)]
pub struct EventsDecoder {
    request: ValidatedRequest,
    /// The piece's parts, for a model with parts (its header declares them in this
    /// order); empty for a model without.
    parts: Vec<PlannedPart>,
    /// The part whose notes are being written at this position.
    part: Option<u8>,
    /// A part the user brought, forced note for note.
    given: Option<GivenPart>,
    /// How many of the given part's tokens at this position are written.
    given_cursor: usize,
    /// The position whose given notes are all written.
    given_written: Option<u64>,
    /// How many of the given part's onsets are written.
    given_progress: usize,
    last: Option<Token>,
    bars: u32,
    bar_start: u64,
    bar_units: u64,
    meter: (u8, u8),
    position: Option<u64>,
    /// Lowest pitch the next note at this position may have (notes ascend within a position).
    next_pitch_floor: u8,
    pending: Option<Pending>,
    /// (start, end, part) of the notes written so far, in grid units, for the
    /// polyphony limits.
    ends: Vec<(u64, u64, Option<u8>)>,
    /// Tempo changes (grid units, bpm).
    tempos: Vec<(u64, f64)>,
    meters: Vec<(u64, u8, u8)>,
    notes: u32,
    /// `notes` when the bar being written began.
    notes_before_bar: u32,
    tokens: u32,
    /// The budget is spent: finish the note and, when asked, reach a bar line.
    closing: bool,
    done: bool,
    /// `max_copied_notes`: masks pitches that would copy a longer run.
    copy_guard: Option<CopyGuard>,
}

/// Longest single note, in beats (a guard against endless duration tokens).
const MAX_NOTE_BEATS: u64 = 16;

impl EventsDecoder {
    pub fn new(
        request: ValidatedRequest,
        parts: Vec<PlannedPart>,
        given: Option<GivenPart>,
        grammar: &EventsGrammar,
    ) -> EventsDecoder {
        let meter = request.time_signature.unwrap_or((4, 4));
        let tempo = request.tempo_bpm.unwrap_or(120.0);
        EventsDecoder {
            bar_units: bar_units(meter.0, meter.1, grammar.config.grid_per_beat),
            meter,
            request,
            parts,
            part: None,
            given,
            given_cursor: 0,
            given_written: None,
            given_progress: 0,
            last: None,
            bars: 0,
            bar_start: 0,
            position: None,
            next_pitch_floor: 0,
            pending: None,
            ends: Vec::new(),
            tempos: vec![(0, tempo)],
            meters: vec![(0, meter.0, meter.1)],
            notes: 0,
            notes_before_bar: 0,
            tokens: 0,
            closing: false,
            done: false,
            copy_guard: None,
        }
    }

    /// Masks, from now on, every pitch that would extend a run copied from the
    /// training pieces past the guard's limit.
    pub fn guard_copies(&mut self, guard: CopyGuard) {
        self.copy_guard = Some(guard);
    }

    pub fn done(&self) -> bool {
        self.done
    }

    pub fn tempos(&self) -> &[(u64, f64)] {
        &self.tempos
    }

    pub fn meters(&self) -> &[(u64, u8, u8)] {
        &self.meters
    }

    /// A 0/−∞ mask over the vocabulary: which ids may come next.
    pub fn mask(&self, grammar: &EventsGrammar) -> Vec<f32> {
        let mut allowed: Vec<bool> =
            grammar.tokens.iter().map(|token| token.is_some_and(|t| self.allows(t, grammar))).collect();
        self.mask_copies(&mut allowed, grammar);
        // A dead end (the model's vocabulary cannot continue under these
        // constraints) falls back to a bar line, or failing that, anything parsable.
        let any = allowed.iter().any(|&a| a);
        allowed
            .iter()
            .zip(&grammar.tokens)
            .map(|(&ok, token)| {
                let ok = ok || (!any && matches!(token, Some(Token::Bar)));
                if ok { 0.0 } else { f32::NEG_INFINITY }
            })
            .collect()
    }

    /// Clears the pitches the copy guard forbids at the current position.
    fn mask_copies(&self, allowed: &mut [bool], grammar: &EventsGrammar) {
        let (Some(guard), Some(position)) = (&self.copy_guard, self.position) else { return };
        let pitches: Vec<(usize, u8)> = (0..allowed.len())
            .filter_map(|id| match grammar.tokens[id] {
                Some(Token::Pitch(pitch)) if allowed[id] => Some((id, pitch)),
                _ => None,
            })
            .collect();
        if pitches.is_empty() {
            return;
        }
        let mut candidates = PitchSet::default();
        pitches.iter().for_each(|&(_, pitch)| candidates.insert(pitch));
        // A dead end (every pitch forbidden where one must come) falls back to a
        // bar line in `mask`, as any other.
        let forbidden = guard.forbidden(position as f64 / grammar.grid_per_beat(), candidates);
        for (id, pitch) in pitches {
            allowed[id] &= !forbidden.contains(pitch);
        }
    }

    /// The header that declares the planned parts, to be fed to the model before
    /// the first bar; empty without parts.
    pub fn header(&self) -> Vec<Token> {
        self.parts.iter().zip(0..).flat_map(|(part, index)| part.declared.header(index)).collect()
    }

    /// The given part's token that must come next, if one must.
    pub fn forced(&self) -> Option<Token> {
        let given = self.given.as_ref()?;
        if self.part != Some(given.part) {
            return None;
        }
        given.schedule.get(&self.position?)?.get(self.given_cursor).copied()
    }

    /// Seconds of music written so far: to the position being written.
    pub fn seconds_written(&self, grammar: &EventsGrammar) -> f64 {
        seconds_at(&self.tempos, self.position.unwrap_or(self.bar_start), grammar.grid_per_beat())
    }

    /// New settings for the rest of the piece (a listener controlling a stream):
    /// sampling, pitches, polyphony, instrument and tempo. The note being written
    /// keeps its pitch; a new tempo holds from the position being written on.
    pub fn control(&mut self, settings: &ValidatedRequest) {
        self.request.sampling = settings.sampling;
        self.request.pitches = settings.pitches;
        self.request.max_polyphony = settings.max_polyphony;
        if settings.program_asked {
            self.request.program = settings.program;
        }
        // Each part follows the new key (within its own range, where it has one),
        // and takes its own settings, else the piece's program.
        for part in &mut self.parts {
            let name = part.declared.name.as_deref().unwrap_or_default();
            let asked = settings.parts.iter().find(|asked| asked.name.eq_ignore_ascii_case(name));
            part.pitches = asked.map_or(settings.pitches, |asked| asked.pitches);
            if let Some(asked) = asked {
                part.max_polyphony = asked.max_polyphony;
            }
            let program = asked.and_then(|asked| asked.program);
            if let Some(program) = program.or(settings.program_asked.then_some(settings.program)) {
                part.program = program;
            }
        }
        if let Some(bpm) = settings.tempo_bpm.filter(|&bpm| Some(bpm) != self.request.tempo_bpm) {
            self.request.tempo_bpm = Some(bpm);
            self.set_tempo(self.position.unwrap_or(self.bar_start), bpm);
        }
    }

    /// Ends the piece at the next bar line: the note being written is finished,
    /// then only a bar line may come. When no note of the bar being written has
    /// begun, the line that opened it is that next line: the piece ends there at
    /// once, not after an empty bar (a realtime stream writes ahead of its
    /// listener, so a stop often lands just past a bar line).
    pub fn stop(&mut self) {
        self.closing = true;
        self.request.end_on_bar = true;
        let bar_is_empty = self.notes == self.notes_before_bar && self.pending.is_none();
        if self.bars > 1 && bar_is_empty {
            self.done = true;
            self.position = None;
            // A tempo or meter from that line on would change nothing that sounds.
            let end = self.bar_start;
            self.tempos.retain(|&(at, _)| at < end);
            self.meters.retain(|&(at, ..)| at < end);
        }
    }

    /// The grid position `bars` bars before the bar being written (0 at the earliest).
    pub fn bars_back(&self, bars: u32) -> u64 {
        self.bar_start.saturating_sub(u64::from(bars) * self.bar_units)
    }

    /// Forgets tempo changes before grid position `at` but the one in force there
    /// (an endless piece keeps only what its stored window needs).
    pub fn forget_tempos_before(&mut self, at: u64) {
        let in_force = self.tempos.partition_point(|&(t, _)| t <= at).saturating_sub(1);
        self.tempos.drain(..in_force);
    }

    /// How many of the given part's onsets are written.
    pub fn given_progress(&self) -> usize {
        self.given_progress
    }

    /// The given part has notes at this position that are not written yet.
    fn given_due_here(&self) -> bool {
        match (&self.given, self.position) {
            (Some(given), Some(at)) => given.schedule.contains_key(&at) && self.given_written != Some(at),
            _ => false,
        }
    }

    /// The next onset of the given part after this position.
    fn next_given_onset(&self) -> Option<u64> {
        let from = self.position.map_or(self.bar_start, |at| at + 1);
        self.given.as_ref()?.schedule.range(from..).next().map(|(&at, _)| at)
    }

    /// What a given part adds to the grammar: no position or bar line skips its
    /// notes, the parts before it may come first at a position where it plays, and
    /// it plays nothing but its own notes.
    fn given_allows(&self, token: Token) -> bool {
        let Some(given) = &self.given else { return true };
        let due = self.given_due_here();
        match token {
            Token::Bar => {
                !due && (self.bars == 0
                    || self.next_given_onset().is_none_or(|next| next >= self.bar_start + self.bar_units))
            }
            Token::Pos(p) => {
                !due && self.next_given_onset().is_none_or(|next| self.bar_start + u64::from(p) <= next)
            }
            Token::Part(index) if due => index <= given.part,
            Token::Part(index) => index != given.part,
            Token::Pitch(_) | Token::Vel(_) | Token::Dur(_) => self.part != Some(given.part),
            _ => true,
        }
    }

    fn allows(&self, token: Token, grammar: &EventsGrammar) -> bool {
        if let Some(forced) = self.forced() {
            return token == forced;
        }
        self.given_allows(token) && self.grammar_allows(token, grammar)
    }

    fn grammar_allows(&self, token: Token, grammar: &EventsGrammar) -> bool {
        let request = &self.request;
        let with_parts = !self.parts.is_empty();
        // A position is open but holds nothing yet: no bar line or next position.
        let unfinished =
            matches!(self.last, Some(Token::Pos(_) | Token::Tempo(_) | Token::Prog(_) | Token::Part(_)));
        let longest = MAX_NOTE_BEATS * u64::from(grammar.config.grid_per_beat);
        if self.closing {
            // The budget is spent: finish the note being written, then a bar line.
            return match (self.last, token) {
                (Some(Token::Pitch(_)), Token::Vel(_)) | (Some(Token::Vel(_)), Token::Dur(_)) => true,
                (Some(Token::Pitch(_) | Token::Vel(_)), _) => false,
                (Some(Token::Dur(_)), Token::Dur(_)) => self.pending_units() < longest,
                (_, token) => token == Token::Bar,
            };
        }
        match (self.last, token) {
            (None, Token::Bar) => true,
            (None, _) => false,
            (Some(Token::Pitch(_)), token) => matches!(token, Token::Vel(_)),
            (Some(Token::Vel(_)), token) => matches!(token, Token::Dur(_)),
            (_, Token::Vel(_)) => false,
            (Some(Token::Bar), Token::TimeSig(n, d)) => {
                request.time_signature.is_none_or(|fixed| fixed == (n, d) && self.bars == 1)
            }
            (_, Token::TimeSig(..)) => false,
            (Some(Token::Dur(_)), Token::Dur(_)) => self.pending_units() < longest,
            (_, Token::Dur(_)) => false,
            (_, Token::Bar) => !unfinished,
            (_, Token::Pos(p)) => {
                let p = u64::from(p);
                p < self.bar_units && self.position.is_none_or(|at| p > at - self.bar_start) && !unfinished
            }
            (_, Token::Tempo(_)) => request.tempo_bpm.is_none() && matches!(self.last, Some(Token::Pos(_))),
            // The header is written before decoding starts.
            (_, Token::Drums | Token::Name(_)) => false,
            // Parts at a position come in the header's order, each at most once.
            (_, Token::Part(index)) => {
                usize::from(index) < self.parts.len()
                    && self.position.is_some()
                    && self.part.is_none_or(|current| index > current)
                    && matches!(self.last, Some(Token::Pos(_) | Token::Tempo(_) | Token::Dur(_)))
            }
            (_, Token::Prog(p)) => {
                !with_parts
                    && p == request.program
                    && matches!(self.last, Some(Token::Pos(_) | Token::Tempo(_) | Token::Dur(_)))
            }
            (_, Token::Pitch(p)) => {
                let follows = if with_parts {
                    matches!(self.last, Some(Token::Part(_) | Token::Dur(_)))
                } else {
                    matches!(
                        self.last,
                        Some(Token::Pos(_) | Token::Tempo(_) | Token::Prog(_) | Token::Dur(_))
                    )
                };
                let planned = self.part.and_then(|index| self.parts.get(usize::from(index)));
                let in_part = match planned {
                    Some(part) => {
                        part.pitches[usize::from(p.min(127))]
                            && part
                                .max_polyphony
                                .is_none_or(|max| self.sounding(self.part) < usize::from(max))
                    }
                    None => !with_parts,
                };
                self.position.is_some()
                    && follows
                    && in_part
                    && p >= self.next_pitch_floor
                    && request.pitches.get(usize::from(p)).copied().unwrap_or(false)
                    && request.max_polyphony.is_none_or(|max| self.sounding(None) < usize::from(max))
            }
        }
    }

    fn pending_units(&self) -> u64 {
        self.pending.map_or(0, |note| note.duration)
    }

    /// Notes sounding at the current position (the one being written included), in
    /// one part or, for `None`, in all.
    fn sounding(&self, part: Option<u8>) -> usize {
        let Some(at) = self.position else { return 0 };
        let counted = |of: Option<u8>| part.is_none() || of == part;
        let finished =
            self.ends.iter().filter(|&&(start, end, of)| start <= at && at < end && counted(of)).count();
        finished + usize::from(self.pending.is_some_and(|note| note.start == at && counted(note.part)))
    }

    /// Takes the chosen token; returns the note it completed, if any.
    pub fn accept(&mut self, token: Token, grammar: &EventsGrammar) -> Option<GeneratedNote> {
        let forced = self.forced() == Some(token);
        self.tokens += 1;
        let completed =
            if matches!(token, Token::Vel(_) | Token::Dur(_)) { None } else { self.finish_note(grammar) };
        self.last = Some(token);
        match token {
            Token::Bar => {
                if self.bars > 0 {
                    self.bar_start += self.bar_units;
                }
                self.bars += 1;
                self.notes_before_bar = self.notes;
                self.position = None;
                self.part = None;
            }
            Token::TimeSig(n, d) => {
                self.meter = (n, d);
                self.bar_units = bar_units(self.meter.0, self.meter.1, grammar.config.grid_per_beat);
                self.meters.retain(|&(at, ..)| at != self.bar_start);
                self.meters.push((self.bar_start, n, d));
            }
            Token::Pos(p) => {
                let at = self.bar_start + u64::from(p);
                // Notes over by now never sound again: an endless piece stays small.
                self.ends.retain(|&(_, end, _)| end > at);
                self.position = Some(at);
                self.next_pitch_floor = 0;
                self.part = None;
                self.given_cursor = 0;
            }
            Token::Tempo(bpm) => {
                if let Some(at) = self.position {
                    self.set_tempo(at, f64::from(bpm));
                }
            }
            Token::Prog(_) => self.next_pitch_floor = 0,
            Token::Part(index) => {
                self.part = Some(index);
                self.next_pitch_floor = 0;
                self.given_cursor = 0;
            }
            Token::Drums | Token::Name(_) => {}
            Token::Pitch(pitch) => {
                if let Some(start) = self.position {
                    if let Some(guard) = &mut self.copy_guard {
                        guard.push(pitch, start as f64 / grammar.grid_per_beat());
                    }
                    self.pending = Some(Pending { pitch, velocity: 64, start, duration: 0, part: self.part });
                    self.next_pitch_floor = pitch.saturating_add(1);
                }
            }
            Token::Vel(velocity) => {
                if let Some(note) = &mut self.pending {
                    note.velocity = velocity.clamp(1, 127);
                }
            }
            Token::Dur(units) => {
                if let Some(note) = &mut self.pending {
                    if note.duration == 0 {
                        self.notes += 1;
                    }
                    note.duration += u64::from(units);
                }
            }
        }
        if forced {
            self.given_cursor += 1;
            if self.forced().is_none() {
                self.given_written = self.position;
                self.given_progress += 1;
            }
        }
        self.closing = self.closing || self.budget_spent(grammar);
        if self.closing {
            self.done = if self.request.end_on_bar {
                token == Token::Bar
            } else {
                !matches!(token, Token::Pitch(_) | Token::Vel(_))
            };
        }
        completed
    }

    /// The piece's notes as kept: when it ends on a bar line, notes that would ring
    /// past that line are cut there (streamed notes went out as sampled).
    pub fn closed(&self, mut notes: Vec<GeneratedNote>, grammar: &EventsGrammar) -> Vec<GeneratedNote> {
        if !(self.done && self.request.end_on_bar) {
            return notes;
        }
        let per_beat = grammar.grid_per_beat();
        let end = self.bar_start;
        for note in &mut notes {
            let start = (note.start_beat * per_beat).round() as u64;
            if start + (note.duration_beats * per_beat).round() as u64 > end && start < end {
                note.duration_beats = (end - start) as f64 / per_beat;
                note.duration_seconds = seconds_at(&self.tempos, end, per_beat) - note.start_seconds;
            }
        }
        notes
    }

    /// Ends the piece where it stands; returns the note being written, if any.
    pub fn finish(&mut self, grammar: &EventsGrammar) -> Option<GeneratedNote> {
        self.done = true;
        self.finish_note(grammar)
    }

    /// A tempo from grid position `at` on, kept sorted by position (`seconds_at`
    /// relies on it).
    fn set_tempo(&mut self, at: u64, bpm: f64) {
        self.tempos.retain(|&(t, _)| t != at);
        let index = self.tempos.partition_point(|&(t, _)| t < at);
        self.tempos.insert(index, (at, bpm));
    }

    fn budget_spent(&self, grammar: &EventsGrammar) -> bool {
        match self.request.length {
            Length::Notes(n) => self.notes >= n,
            Length::Tokens(n) => self.tokens >= n,
            // Spent when the bar after the last one asked for has begun.
            Length::Bars(n) => self.bars > n,
            Length::Endless(_) => false,
            Length::Seconds(s) => {
                let at = self.position.unwrap_or(self.bar_start);
                seconds_at(&self.tempos, at, grammar.grid_per_beat()) >= s
            }
        }
    }

    fn finish_note(&mut self, grammar: &EventsGrammar) -> Option<GeneratedNote> {
        let mut note = self.pending.take().filter(|note| note.duration > 0)?;
        // A given note comes back as given, whatever the tokens could say of it.
        let given = self.given.as_ref().filter(|given| note.part == Some(given.part));
        if let Some(&(duration, velocity)) =
            given.and_then(|given| given.notes.get(&(note.start, note.pitch)))
        {
            (note.duration, note.velocity) = (duration, velocity);
        }
        let end = note.start + note.duration;
        self.ends.push((note.start, end, note.part));
        let per_beat = grammar.grid_per_beat();
        let start_seconds = seconds_at(&self.tempos, note.start, per_beat);
        let planned = note.part.and_then(|index| Some((index, self.parts.get(usize::from(index))?)));
        Some(GeneratedNote {
            pitch: note.pitch,
            velocity: note.velocity,
            program: planned.map_or(self.request.program, |(_, part)| part.program),
            part: planned.map(|(index, part)| part.note_part(index)),
            start_beat: note.start as f64 / per_beat,
            duration_beats: (end - note.start) as f64 / per_beat,
            start_seconds,
            duration_seconds: seconds_at(&self.tempos, end, per_beat) - start_seconds,
        })
    }
}

/// Seconds at grid position `at` under the tempo changes, which must be sorted by
/// position (the decoder keeps them so; this runs at every note).
pub fn seconds_at(tempos: &[(u64, f64)], at: u64, units_per_beat: f64) -> f64 {
    let mut seconds = 0.0;
    for (index, &(from, bpm)) in tempos.iter().enumerate() {
        if from >= at {
            break;
        }
        let to = tempos.get(index + 1).map_or(at, |&(next, _)| next.min(at));
        seconds += (to - from) as f64 / units_per_beat * 60.0 / bpm;
    }
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::request::GenerateRequest;

    fn grammar() -> EventsGrammar {
        let tokens = [
            "Bar",
            "Dur_12",
            "Dur_24",
            "Pitch_60",
            "Pitch_62",
            "Pitch_64",
            "Pos_0",
            "Pos_12",
            "Pos_24",
            "Pos_36",
            "Pos_48",
            "Pos_72",
            "Tempo_96",
            "TimeSig_3/4",
            "TimeSig_4/4",
            "Vel_90",
        ];
        let vocabulary = Vocabulary::from(tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        EventsGrammar::new(&vocabulary, &EventsConfig::default())
    }

    /// Runs the decoder choosing, at every step, the allowed token `choose` picks.
    fn run(
        request: serde_json::Value,
        choose: impl Fn(&[Token]) -> Token,
    ) -> (Vec<Token>, Vec<GeneratedNote>) {
        let (tokens, notes, _) = run_stopped(request, choose, |_| false);
        (tokens, notes)
    }

    /// As `run`, with the listener's stop sent once `stop_now` holds for the
    /// tokens written so far; also returns where tempo and meter changes are, in
    /// beats.
    fn run_stopped(
        request: serde_json::Value,
        choose: impl Fn(&[Token]) -> Token,
        stop_now: impl Fn(&[Token]) -> bool,
    ) -> (Vec<Token>, Vec<GeneratedNote>, Vec<f64>) {
        let grammar = grammar();
        let request = serde_json::from_value::<GenerateRequest>(request).unwrap().check(1).unwrap();
        let mut decoder = EventsDecoder::new(request, Vec::new(), None, &grammar);
        let (mut tokens, mut notes) = (vec![Token::Bar], Vec::new());
        notes.extend(decoder.accept(Token::Bar, &grammar));
        let mut stopped = false;
        loop {
            if !stopped && stop_now(&tokens) {
                decoder.stop();
                stopped = true;
            }
            if decoder.done() || tokens.len() >= 500 {
                break;
            }
            let mask = decoder.mask(&grammar);
            let allowed: Vec<Token> =
                (0..mask.len()).filter(|&i| mask[i] == 0.0).filter_map(|i| grammar.token(i as i64)).collect();
            let token = choose(&allowed);
            tokens.push(token);
            notes.extend(decoder.accept(token, &grammar));
        }
        notes.extend(decoder.finish(&grammar));
        let changes =
            decoder.tempos().iter().map(|&(at, _)| at).chain(decoder.meters().iter().map(|&(at, ..)| at));
        let changes = changes.map(|at| at as f64 / grammar.grid_per_beat()).collect();
        (tokens, decoder.closed(notes, &grammar), changes)
    }

    /// A chooser that picks uniformly among the allowed tokens, seeded.
    fn random(seed: u64) -> impl Fn(&[Token]) -> Token {
        let rng = std::cell::RefCell::new(crate::model::sampling::Rng::new(seed));
        move |allowed| allowed[(rng.borrow_mut().next_u64() % allowed.len() as u64) as usize]
    }

    #[test]
    fn the_grammar_holds_whatever_the_model_picks() {
        for seed in 0..20 {
            let (tokens, notes) = run(serde_json::json!({"length": {"notes": 12}}), random(seed));
            for pair in tokens.windows(2) {
                match pair[0] {
                    Token::Pitch(_) => assert!(matches!(pair[1], Token::Vel(_)), "{tokens:?}"),
                    Token::Vel(_) => assert!(matches!(pair[1], Token::Dur(_)), "{tokens:?}"),
                    _ => {}
                }
                if let (Token::Pos(a), Token::Pos(b)) = (pair[0], pair[1]) {
                    panic!("two positions in a row: {a} {b}");
                }
            }
            assert_eq!(notes.len(), 12, "{tokens:?}");
            assert_eq!(tokens.last(), Some(&Token::Bar), "ends on a bar line");
            let bars = tokens.iter().filter(|t| **t == Token::Bar).count() as f64;
            let end = (bars - 1.0) * 4.0;
            assert!(
                notes.iter().all(|n| n.start_beat + n.duration_beats <= end + 1e-9),
                "no note rings past the end"
            );
        }
    }

    #[test]
    fn key_range_polyphony_tempo_and_meter_are_obeyed() {
        let request = serde_json::json!({"length": {"notes": 20}, "key": "D", "scale": "major",
            "pitch_range": [61, 64], "max_polyphony": 1, "tempo_bpm": 60, "time_signature": [3, 4]});
        for seed in 0..20 {
            let (tokens, notes) = run(request.clone(), random(seed));
            // D major within 61..=64: C#4 and D4 and E4 (61, 62, 64); the grammar's
            // vocabulary holds 60, 62 and 64.
            assert!(notes.iter().all(|n| [62, 64].contains(&n.pitch)), "{notes:?}");
            assert!(!tokens.iter().any(|t| matches!(t, Token::Tempo(_))));
            assert!(!tokens.contains(&Token::TimeSig(4, 4)));
            assert!(tokens.iter().all(|t| !matches!(t, Token::Pos(p) if *p >= 72)), "3/4 bars are 72 units");
            for (a, b) in notes.iter().zip(notes.iter().skip(1)) {
                assert!(
                    a.start_beat + a.duration_beats <= b.start_beat + 1e-9,
                    "one note at a time: {a:?} {b:?}"
                );
            }
            // At 60 bpm a beat is a second.
            assert!(notes.iter().all(|n| (n.start_seconds - n.start_beat).abs() < 1e-9));
        }
    }

    #[test]
    fn bars_seconds_and_tokens_budgets_stop_where_asked() {
        let (tokens, notes) = run(serde_json::json!({"length": {"bars": 2}}), random(1));
        assert_eq!(tokens.iter().filter(|t| **t == Token::Bar).count(), 3, "two bars and the closing line");
        assert!(notes.iter().all(|n| n.start_beat + n.duration_beats <= 8.0 + 1e-9));
        // 3 s at 120 bpm is beat 6, inside the second 4/4 bar: nothing starts from
        // there on, and the piece closes on the bar line at beat 8 (4 s).
        let (tokens, notes) =
            run(serde_json::json!({"length": {"seconds": 3.0}, "tempo_bpm": 120}), random(2));
        assert_eq!(
            tokens.iter().filter(|t| **t == Token::Bar).count(),
            3,
            "bars at 0 s, 2 s and the close at 4 s"
        );
        assert!(notes.iter().all(|n| n.start_seconds < 3.0), "no onset past the budget: {notes:?}");
        let end = notes.iter().map(|n| n.start_seconds + n.duration_seconds).fold(0.0, f64::max);
        assert!(end <= 4.0 + 1e-9, "nothing rings past the closing bar line: {end}");
        let (tokens, _) = run(serde_json::json!({"length": {"tokens": 30}, "end_on_bar": false}), random(3));
        assert!((30..=33).contains(&tokens.len()), "stops once the note is whole: {}", tokens.len());
        assert!(!matches!(tokens.last(), Some(Token::Pitch(_) | Token::Vel(_))), "no note left half-written");
    }

    #[test]
    fn a_stop_ends_the_piece_on_the_line_of_a_bar_with_no_note_yet_else_the_next() {
        let bars = |tokens: &[Token]| tokens.iter().filter(|t| **t == Token::Bar).count();
        let no_note_since_the_line = |tokens: &[Token]| {
            tokens.iter().rev().take_while(|t| **t != Token::Bar).all(|t| !matches!(t, Token::Pitch(_)))
        };
        // No meter is fixed, so that every bar may mark one (the model below marks
        // 4/4, keeping bar lines 4 beats apart).
        let request = serde_json::json!({"length": {"bars": 8}});
        // Where it stops, from the second bar on: just past a bar line; on the bar's
        // meter, first position, or tempo, before any note; inside a bar, after a
        // note has begun.
        let just_past_a_line = |tokens: &[Token]| tokens.last() == Some(&Token::Bar);
        let on_a_meter = |tokens: &[Token]| matches!(tokens.last(), Some(Token::TimeSig(..)));
        let on_a_first_position =
            |tokens: &[Token]| matches!(tokens.last(), Some(Token::Pos(_))) && no_note_since_the_line(tokens);
        let on_a_first_tempo = |tokens: &[Token]| {
            matches!(tokens.last(), Some(Token::Tempo(_))) && no_note_since_the_line(tokens)
        };
        let after_a_note = |tokens: &[Token]| matches!(tokens.last(), Some(Token::Dur(_)));
        for seed in 0..20 {
            // The model marks 4/4 and a tempo wherever it may (so that those cases
            // come), and else picks at random.
            let pick = random(seed);
            let marks = |allowed: &[Token]| {
                allowed
                    .iter()
                    .copied()
                    .find(|t| matches!(t, Token::Tempo(_) | Token::TimeSig(4, 4)))
                    .unwrap_or_else(|| pick(allowed))
            };
            for (stop_here, ends_after_it) in [
                (&just_past_a_line as &dyn Fn(&[Token]) -> bool, false),
                (&on_a_meter, false),
                (&on_a_first_position, false),
                (&on_a_first_tempo, false),
                (&after_a_note, true),
            ] {
                let stopped_in = std::cell::Cell::new(0);
                let (tokens, notes, changes) = run_stopped(request.clone(), marks, |tokens| {
                    let now = bars(tokens) >= 2 && stop_here(tokens);
                    if now {
                        stopped_in.set(bars(tokens));
                    }
                    now
                });
                // Bar lines are at beats 0, 4, 8…: the one opening the bar stopped in
                // is at 4 × (its number − 1).
                let line = if ends_after_it { stopped_in.get() } else { stopped_in.get() - 1 };
                assert_eq!(bars(&tokens), line + 1, "seed {seed}: {tokens:?}");
                let end = line as f64 * 4.0;
                assert!(notes.iter().all(|n| n.start_beat < end), "seed {seed}: {notes:?}");
                assert!(notes.iter().all(|n| n.start_beat + n.duration_beats <= end + 1e-9), "{notes:?}");
                assert!(
                    changes.iter().all(|&at| at < end),
                    "seed {seed}: no tempo or meter from the end on: {changes:?}"
                );
                if ends_after_it {
                    assert!(
                        notes.iter().any(|n| n.start_beat >= end - 4.0),
                        "seed {seed}: the note begun is kept"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod given_tests {
    use super::*;
    use crate::generate::given::place;
    use crate::generate::request::{GenerateRequest, GivenDecoding, PartReference};
    use crate::model::artifact::{Representation, read_meta};

    /// The bundled four-part model's grammar and parts, and a chorale's soprano
    /// placed as the given part.
    fn bundled_soprano() -> (EventsGrammar, Vec<PlannedPart>, GivenPart, ValidatedRequest) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let meta = read_meta(&root.join("models/default")).unwrap();
        let Representation::Events { config, vocabulary, parts: table } = &meta.representation else {
            panic!("the bundled model is an events model")
        };
        let grammar = EventsGrammar::new(vocabulary, config);
        let mut request =
            serde_json::from_value::<GenerateRequest>(serde_json::json!({})).unwrap().check(1).unwrap();
        let planned = crate::generate::parts::plan(&request, table, 4).unwrap();
        let bytes = std::fs::read(root.join("../shared/data/bach-chorales-midi/bwv10.7.mid")).unwrap();
        let mut score = crate::midi::read(&bytes).unwrap();
        score.parts.retain(|part| part.name.as_deref() == Some("Soprano"));
        let given = place(
            &score,
            &PartReference::Name("soprano".into()),
            &planned,
            GivenDecoding::Forced,
            &grammar,
            (4, 4),
            "given.notes",
        )
        .unwrap();
        request.length = Length::Bars(given.bars);
        request.time_signature = Some((4, 4));
        (grammar, planned, given, request)
    }

    #[test]
    fn the_given_part_is_written_note_for_note_whatever_the_model_picks() {
        let (grammar, planned, given, request) = bundled_soprano();
        for seed in 0..10 {
            let rng = std::cell::RefCell::new(crate::model::sampling::Rng::new(seed));
            let mut decoder =
                EventsDecoder::new(request.clone(), planned.clone(), Some(given.clone()), &grammar);
            let mut notes = Vec::new();
            notes.extend(decoder.accept(Token::Bar, &grammar));
            let mut steps = 0;
            while !decoder.done() {
                steps += 1;
                assert!(steps < 20_000, "seed {seed}: the piece never ends");
                let mask = decoder.mask(&grammar);
                let allowed: Vec<Token> = (0..mask.len())
                    .filter(|&i| mask[i] == 0.0)
                    .filter_map(|i| grammar.token(i as i64))
                    .collect();
                let token = allowed[(rng.borrow_mut().next_u64() % allowed.len() as u64) as usize];
                notes.extend(decoder.accept(token, &grammar));
            }
            notes.extend(decoder.finish(&grammar));
            let notes = decoder.closed(notes, &grammar);
            let per_beat = grammar.grid_per_beat();
            let mut sung: Vec<(u64, u8, u64, u8)> = notes
                .iter()
                .filter(|note| note.part.is_some_and(|part| part.index == 0))
                .map(|note| {
                    let units = |beats: f64| (beats * per_beat).round() as u64;
                    (units(note.start_beat), note.pitch, units(note.duration_beats), note.velocity)
                })
                .collect();
            sung.sort();
            let expected: Vec<(u64, u8, u64, u8)> = given
                .notes
                .iter()
                .map(|(&(onset, pitch), &(duration, velocity))| (onset, pitch, duration, velocity))
                .collect();
            assert_eq!(sung, expected, "seed {seed}");
        }
    }
}
