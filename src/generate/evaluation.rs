//! A model's music against its held-out files: pieces it generated with a run of
//! seeds, summarised feature by feature (MGEval-style) and compared with the
//! held-out files' summary, and how much of them is copied from its training
//! pieces. `fugue evaluate` and the evaluation jobs both end here.

use super::Piece;
use super::compose::analysis_notes;
use crate::analysis::originality::{CopyKind, OriginalityIndex};
use crate::analysis::statistics::{PieceStatistics, SetComparison, SetStatistics};
use crate::model::artifact::MusicEvaluation;

/// The request each evaluated piece is generated from: a length in notes and its
/// seed, nothing else, so that the same model and seed give the same piece here,
/// in `fugue evaluate` and over HTTP.
pub fn piece_request(model: Option<&str>, notes: u32, seed: u64) -> serde_json::Value {
    let mut request = serde_json::json!({"length": {"notes": notes}, "seed": seed});
    if let Some(model) = model {
        request["model"] = model.into();
    }
    request
}

/// `pieces` (generated with seeds `first_seed`, `first_seed + 1`, …, each asked
/// for `notes_per_piece` notes) against `reference`, the held-out files' summary.
pub fn music_evaluation(
    pieces: &[Piece],
    reference: SetStatistics,
    index: Option<&OriginalityIndex>,
    notes_per_piece: u32,
    first_seed: u64,
) -> MusicEvaluation {
    let notes: Vec<_> = pieces.iter().map(|piece| analysis_notes(&piece.notes)).collect();
    let statistics: Vec<PieceStatistics> =
        notes.iter().filter_map(|notes| PieceStatistics::of(notes)).collect();
    let mut copied: Vec<u32> = match index {
        Some(index) => {
            notes.iter().map(|notes| index.lookup(notes, &[]).notes(CopyKind::Transposed)).collect()
        }
        None => Vec::new(),
    };
    copied.sort_unstable();
    MusicEvaluation {
        pieces: pieces.len(),
        notes_per_piece,
        first_seed,
        comparison: SetComparison::of_sets(SetStatistics::of(&statistics), reference),
        median_copied_notes: copied.get(copied.len() / 2).copied(),
        longest_copied_notes: copied.last().copied(),
    }
}
