//! The index: one suffix automaton per [`CopyKind`] over every training piece's
//! steps, and what it takes to say where a match comes from.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::automaton::{Match, SuffixAutomaton};
use super::symbols::{CopyKind, PIECE_END, SequencedNote, onset_sequence};
use crate::analysis::{AnalysisNote, TrainingPiece};

/// Most training notes (after merging unisons) an index takes: 8.5 times the 410
/// chorales. At the chorales' 133 bytes per note that is 133 MB in memory, and
/// never more than 173 MB (the automata's worst case, see the module doc).
pub const MAX_INDEXED_NOTES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    #[error("{notes} training notes: more than the {MAX_INDEXED_NOTES} an originality index takes")]
    TooManyNotes { notes: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub struct OriginalityIndex {
    pieces: Vec<IndexedPiece>,
    /// Per training note, all pieces' onset sequences one after the other: its pitch.
    pitches: Vec<u8>,
    /// Per training note: its bar in its piece.
    bars: Vec<u32>,
    /// Per kind, an automaton over the text whose position g is the step from
    /// training note g to note g + 1, or [`PIECE_END`] after a piece's last note:
    /// text positions and note numbers are the same.
    exact: SuffixAutomaton,
    transposed: SuffixAutomaton,
    onset_order: SuffixAutomaton,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IndexedPiece {
    name: String,
    /// Its first note's number.
    first_note: u32,
}

/// How big an index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSize {
    pub pieces: usize,
    /// Training notes indexed (unisons merged).
    pub notes: usize,
    /// States and edges of the three automata together.
    pub states: usize,
    pub edges: usize,
    /// Bytes held in memory.
    pub heap_bytes: usize,
}

/// Notes a copy check leaves out of the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Notes starting before this beat: a primer the piece continues.
    BeforeBeat(f64),
    /// The notes of this General MIDI program's part: a part that was given.
    Program(u8),
}

impl Exclusion {
    fn excludes(self, note: &AnalysisNote) -> bool {
        match self {
            Exclusion::BeforeBeat(beat) => note.start_beat < beat,
            Exclusion::Program(program) => note.program == program,
        }
    }
}

/// The longest copied run of each kind; None where no two consecutive notes match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CopyReport {
    pub exact: Option<CopiedRun>,
    pub transposed: Option<CopiedRun>,
    pub onset_order: Option<CopiedRun>,
}

impl CopyReport {
    pub fn run(&self, kind: CopyKind) -> Option<&CopiedRun> {
        match kind {
            CopyKind::Exact => self.exact.as_ref(),
            CopyKind::Transposed => self.transposed.as_ref(),
            CopyKind::OnsetOrder => self.onset_order.as_ref(),
        }
    }

    /// The run's length in notes, 0 when there is none.
    pub fn notes(&self, kind: CopyKind) -> u32 {
        self.run(kind).map_or(0, |run| run.notes)
    }
}

/// A run of consecutive notes (in onset order) found in one training piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"notes": 9, "piece": "bwv10.7.mid", "bar": 3, "query_start_beat": 12.5,
    "transposition": 4}))]
pub struct CopiedRun {
    /// Notes in the run, at least 2.
    pub notes: u32,
    /// The training piece's name.
    pub piece: String,
    /// The bar of the training piece where the run starts (1-based; its first
    /// occurrence there when it occurs more than once).
    pub bar: u32,
    /// The beat of the query where the run starts.
    pub query_start_beat: f64,
    /// Semitones from the training run up to the query's: 0 unless `transposed`.
    pub transposition: i8,
}

impl OriginalityIndex {
    pub fn build(pieces: &[TrainingPiece]) -> Result<OriginalityIndex, IndexError> {
        let sequences: Vec<(&TrainingPiece, Vec<(SequencedNote, usize)>)> = pieces
            .iter()
            .map(|piece| (piece, onset_sequence(piece.notes.iter().map(|training| &training.note))))
            .filter(|(_, sequence)| !sequence.is_empty())
            .collect();
        let notes: usize = sequences.iter().map(|(_, sequence)| sequence.len()).sum();
        if notes > MAX_INDEXED_NOTES {
            return Err(IndexError::TooManyNotes { notes });
        }
        let (mut indexed, mut pitches, mut bars) = (Vec::new(), Vec::new(), Vec::new());
        for (piece, sequence) in &sequences {
            indexed.push(IndexedPiece { name: piece.name.clone(), first_note: pitches.len() as u32 });
            pitches.extend(sequence.iter().map(|(note, _)| note.pitch));
            bars.extend(sequence.iter().map(|&(_, index)| piece.notes[index].bar));
        }
        let automaton = |kind: CopyKind| {
            let text: Vec<u32> = sequences
                .iter()
                .flat_map(|(_, sequence)| {
                    let steps = sequence.windows(2).map(move |pair| kind.symbol(pair[0].0, pair[1].0));
                    steps.chain([PIECE_END])
                })
                .collect();
            SuffixAutomaton::build(&text)
        };
        Ok(OriginalityIndex {
            pieces: indexed,
            pitches,
            bars,
            exact: automaton(CopyKind::Exact),
            transposed: automaton(CopyKind::Transposed),
            onset_order: automaton(CopyKind::OnsetOrder),
        })
    }

    pub(super) fn automaton(&self, kind: CopyKind) -> &SuffixAutomaton {
        match kind {
            CopyKind::Exact => &self.exact,
            CopyKind::Transposed => &self.transposed,
            CopyKind::OnsetOrder => &self.onset_order,
        }
    }

    pub fn size(&self) -> IndexSize {
        let automata = CopyKind::ALL.map(|kind| self.automaton(kind));
        let names: usize = self.pieces.iter().map(|piece| piece.name.len() + size_of::<IndexedPiece>()).sum();
        IndexSize {
            pieces: self.pieces.len(),
            notes: self.pitches.len(),
            states: automata.iter().map(|automaton| automaton.states()).sum(),
            edges: automata.iter().map(|automaton| automaton.edges()).sum(),
            heap_bytes: names
                + self.pitches.len()
                + 4 * self.bars.len()
                + automata.iter().map(|automaton| automaton.heap_bytes()).sum::<usize>(),
        }
    }

    /// The longest run of consecutive notes of `query` copied from one training
    /// piece, for each kind, leaving out the notes any of `exclude` names (the
    /// notes on either side of them become neighbours). O(query notes) steps.
    pub fn lookup(&self, query: &[AnalysisNote], exclude: &[Exclusion]) -> CopyReport {
        let kept: Vec<&AnalysisNote> =
            query.iter().filter(|note| !exclude.iter().any(|exclusion| exclusion.excludes(note))).collect();
        let sequence = onset_sequence(kept.iter().copied());
        let longest = |kind: CopyKind| {
            let automaton = self.automaton(kind);
            let mut matched = Match::NONE;
            let mut best: Option<(Match, usize)> = None;
            for (end, pair) in sequence.windows(2).enumerate() {
                matched = automaton.extend(matched, kind.symbol(pair[0].0, pair[1].0));
                if matched.length > best.map_or(0, |(longest, _)| longest.length) {
                    best = Some((matched, end + 1));
                }
            }
            best.map(|(matched, end)| {
                let first = end - matched.length as usize;
                let training_note = automaton.first_end(matched) + 1 - matched.length;
                let (query_note, _) = sequence[first];
                let query_start_beat = kept[sequence[first].1].start_beat;
                self.run(training_note, matched.length + 1, query_note, query_start_beat)
            })
        };
        CopyReport {
            exact: longest(CopyKind::Exact),
            transposed: longest(CopyKind::Transposed),
            onset_order: longest(CopyKind::OnsetOrder),
        }
    }

    /// The run of `notes` notes that starts at training note `first` and at
    /// `query_note` in the query.
    fn run(&self, first: u32, notes: u32, query_note: SequencedNote, query_start_beat: f64) -> CopiedRun {
        let piece = self.pieces.partition_point(|piece| piece.first_note <= first) - 1;
        let first = first as usize;
        CopiedRun {
            notes,
            piece: self.pieces[piece].name.clone(),
            bar: self.bars[first],
            query_start_beat,
            transposition: (i16::from(query_note.pitch) - i16::from(self.pitches[first])) as i8,
        }
    }
}

/// An index as read, before the checks that keep lookups in bounds.
#[derive(Deserialize)]
struct Unchecked {
    pieces: Vec<IndexedPiece>,
    pitches: Vec<u8>,
    bars: Vec<u32>,
    exact: SuffixAutomaton,
    transposed: SuffixAutomaton,
    onset_order: SuffixAutomaton,
}

impl TryFrom<Unchecked> for OriginalityIndex {
    type Error = String;

    fn try_from(raw: Unchecked) -> Result<OriginalityIndex, String> {
        let notes = raw.pitches.len();
        let pieces_in_order = match raw.pieces.first() {
            None => notes == 0,
            Some(first) => first.first_note == 0,
        } && raw.pieces.windows(2).all(|pair| pair[0].first_note < pair[1].first_note)
            && raw.pieces.last().is_none_or(|piece| (piece.first_note as usize) < notes);
        let within = |automaton: &SuffixAutomaton| (automaton.last_position() as usize) < notes.max(1);
        if !(pieces_in_order
            && raw.bars.len() == notes
            && raw.pitches.iter().all(|&pitch| pitch < 128)
            && [&raw.exact, &raw.transposed, &raw.onset_order].into_iter().all(within))
        {
            return Err("originality index: pieces, notes and automata disagree".into());
        }
        Ok(OriginalityIndex {
            pieces: raw.pieces,
            pitches: raw.pitches,
            bars: raw.bars,
            exact: raw.exact,
            transposed: raw.transposed,
            onset_order: raw.onset_order,
        })
    }
}
