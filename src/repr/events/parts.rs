//! Parts in `events`: the part table a piece declares in its header, which of the
//! score's parts play in which declared part, the part of the next note for a
//! decoder, and a corpus's table of parts for a model's artifact.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tokens::{PartName, Token};
use crate::midi::{Part, Score};

/// Most parts the `fugue` preset declares per piece: one per MIDI channel, so a
/// decoded piece can give every part its own channel (fifteen pitched and the drums).
pub const PART_LIMIT: u8 = 16;

/// One entry of a piece's part table, as its header declares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Soprano", "program": 0, "drums": false}))]
pub struct PartSpec {
    /// The track's name as a `Name` token keeps it (first line, at most 23 bytes).
    pub name: Option<String>,
    /// General MIDI program (for drums, the kit).
    pub program: u8,
    pub drums: bool,
}

impl PartSpec {
    pub fn of(part: &Part) -> PartSpec {
        PartSpec {
            name: part.name.as_deref().and_then(PartName::new).map(|name| name.as_str().to_owned()),
            program: part.program,
            drums: part.is_drum,
        }
    }

    /// `Part_i [Drums] Prog_p [Name_n]`: the header tokens declaring this part as part `index`.
    pub fn header(&self, index: u8) -> Vec<Token> {
        let name = self.name.as_deref().and_then(PartName::new).map(Token::Name);
        let drums = self.drums.then_some(Token::Drums);
        [Some(Token::Part(index)), drums, Some(Token::Prog(self.program)), name]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// The parts a piece declares and, for each of the score's parts, the index of
/// the declared part its notes go to.
pub struct Layout {
    pub declared: Vec<PartSpec>,
    pub slot_of: Vec<u8>,
}

/// The score's first `max_parts` parts (at least one) are declared in order. A part beyond them
/// plays in the first declared part of its program and kind (drums or pitched),
/// failing that in the last declared part of its kind, failing that in the last.
pub fn layout(parts: &[Part], max_parts: u8) -> Layout {
    let mut declared: Vec<PartSpec> = Vec::new();
    let mut slot_of = Vec::with_capacity(parts.len());
    for part in parts {
        let spec = PartSpec::of(part);
        let slot = if declared.len() < usize::from(max_parts.max(1)) {
            declared.push(spec);
            declared.len() - 1
        } else {
            let same_kind = |declared: &&PartSpec| declared.drums == spec.drums;
            let same_program = declared.iter().position(|d| same_kind(&d) && d.program == spec.program);
            let last_of_kind = declared.iter().rposition(|d| same_kind(&d));
            same_program.or(last_of_kind).unwrap_or(declared.len() - 1)
        };
        slot_of.push(slot as u8);
    }
    Layout { declared, slot_of }
}

/// The part table a token sequence declares in its header (the tokens before the
/// first `Bar`); tokens out of place are skipped, and gaps in the numbering are
/// filled with unnamed piano parts.
pub fn declared_parts(tokens: &[Token]) -> Vec<PartSpec> {
    let mut parts: Vec<PartSpec> = Vec::new();
    let mut declaring: Option<usize> = None;
    for &token in tokens.iter().take_while(|&&token| token != Token::Bar) {
        match (token, declaring) {
            (Token::Part(index), _) => {
                declaring = Some(usize::from(index));
                ensure_declared(&mut parts, index);
            }
            (Token::Drums, Some(index)) => parts[index].drums = true,
            (Token::Prog(program), Some(index)) => parts[index].program = program.min(127),
            (Token::Name(name), Some(index)) => parts[index].name = Some(name.as_str().to_owned()),
            _ => {}
        }
    }
    parts
}

/// Makes `parts[index]` exist, adding unnamed piano parts up to it.
pub fn ensure_declared(parts: &mut Vec<PartSpec>, index: u8) {
    while parts.len() <= usize::from(index) {
        parts.push(PartSpec { name: None, program: 0, drums: false });
    }
}

/// The part the next note of a token sequence with parts belongs to: the last
/// `Part_i` since the last `Pos` (or `Bar`). `None` in the header, or when the
/// position has no part yet (the next token must then be a `Part`).
///
/// A constrained decoder applies the part's pitch range and polyphony from here.
pub fn next_note_part(prefix: &[Token]) -> Option<u8> {
    let position = prefix.iter().rposition(|token| matches!(token, Token::Pos(_) | Token::Bar))?;
    prefix[position..].iter().rev().find_map(|token| match token {
        Token::Part(index) => Some(*index),
        _ => None,
    })
}

/// A part as it appears across a corpus: what generation can offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Soprano", "program": 0, "drums": false, "files": 365, "notes": 19800,
    "pitch_range": [59, 81]}))]
pub struct CorpusPart {
    #[serde(flatten)]
    pub part: PartSpec,
    /// Files that have this part.
    pub files: u64,
    pub notes: u64,
    /// Lowest and highest pitch (drum sounds, for drums).
    pub pitch_range: [u8; 2],
}

/// Every distinct part (name, program, drums) of the scores, the most common first
/// (ties in order of first appearance).
pub fn corpus_parts<'a>(scores: impl IntoIterator<Item = &'a Score>) -> Vec<CorpusPart> {
    merge_part_tables(scores.into_iter().map(file_parts))
}

/// One file's table of the parts that have notes, each distinct part counted once.
pub fn file_parts(score: &Score) -> Vec<CorpusPart> {
    let mut table: Vec<CorpusPart> = Vec::new();
    for part in score.parts.iter().filter(|part| !part.notes.is_empty()) {
        let spec = PartSpec::of(part);
        let pitches = part.notes.iter().map(|note| note.pitch);
        let (low, high) = (pitches.clone().min().unwrap_or(0), pitches.max().unwrap_or(0));
        let entry =
            CorpusPart { part: spec, files: 1, notes: part.notes.len() as u64, pitch_range: [low, high] };
        merge_entry(&mut table, entry, false);
    }
    table
}

/// Sums files' part tables into a corpus's, the most common part first.
pub fn merge_part_tables(tables: impl IntoIterator<Item = Vec<CorpusPart>>) -> Vec<CorpusPart> {
    let mut merged: Vec<CorpusPart> = Vec::new();
    for entry in tables.into_iter().flatten() {
        merge_entry(&mut merged, entry, true);
    }
    merged.sort_by_key(|entry| std::cmp::Reverse(entry.files));
    merged
}

/// Adds `entry` into the table's entry for the same part, or appends it; `files`
/// add up only across files (within one, a part is one file however many times
/// it appears).
fn merge_entry(table: &mut Vec<CorpusPart>, entry: CorpusPart, across_files: bool) {
    let Some(existing) = table.iter_mut().find(|existing| existing.part == entry.part) else {
        table.push(entry);
        return;
    };
    if across_files {
        existing.files += entry.files;
    }
    existing.notes += entry.notes;
    let [low, high] = entry.pitch_range;
    existing.pitch_range = [existing.pitch_range[0].min(low), existing.pitch_range[1].max(high)];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::Note;

    fn part(name: &str, program: u8, drums: bool, pitch: u8) -> Part {
        let note = Note { pitch, velocity: 90, start: 0, duration: 10 };
        Part { name: Some(name.to_owned()), program, channel: 0, is_drum: drums, notes: vec![note] }
    }

    #[test]
    fn parts_beyond_the_limit_join_one_of_their_kind() {
        let parts = [
            part("Piano", 0, false, 60),
            part("Kit", 0, true, 36),
            part("Violin", 40, false, 70),
            part("Piano 2", 0, false, 50),
            part("Cello", 42, false, 40),
            part("Congas", 1, true, 62),
        ];
        let layout = layout(&parts, 3);
        assert_eq!(
            layout.declared.iter().map(|p| p.name.as_deref().unwrap()).collect::<Vec<_>>(),
            ["Piano", "Kit", "Violin"]
        );
        assert_eq!(layout.slot_of, [0, 1, 2, 0, 2, 1], "same program, else the last of its kind");
    }

    #[test]
    fn the_header_declares_and_the_prefix_tells_the_part() {
        let specs = vec![
            PartSpec { name: Some("Soprano".into()), program: 52, drums: false },
            PartSpec { name: None, program: 0, drums: true },
        ];
        let header: Vec<Token> = specs.iter().zip(0..).flat_map(|(spec, i)| spec.header(i)).collect();
        assert_eq!(declared_parts(&header), specs);
        let mut tokens = header.clone();
        assert_eq!(next_note_part(&tokens), None, "in the header");
        tokens.extend([Token::Bar, Token::Pos(0)]);
        assert_eq!(next_note_part(&tokens), None, "a position without a part yet");
        tokens.extend([Token::Part(1), Token::Pitch(36), Token::Vel(90), Token::Dur(6)]);
        assert_eq!(next_note_part(&tokens), Some(1));
        tokens.extend([Token::Pos(12)]);
        assert_eq!(next_note_part(&tokens), None, "each position names its parts anew");
        // A part used before it is declared is an unnamed piano part.
        assert_eq!(
            declared_parts(&[Token::Part(1), Token::Prog(40)])[0],
            PartSpec { name: None, program: 0, drums: false }
        );
    }

    #[test]
    fn the_corpus_table_counts_files_notes_and_ranges() {
        let score = |parts| Score::of_parts(96, parts);
        let scores = [
            score(vec![part("Tenor", 0, false, 55), part("Bass", 0, false, 40)]),
            score(vec![part("Bass", 0, false, 48), part("Bass", 0, false, 36)]),
        ];
        let table = corpus_parts(&scores);
        assert_eq!(table[0].part.name.as_deref(), Some("Bass"));
        assert_eq!((table[0].files, table[0].notes, table[0].pitch_range), (2, 3, [36, 48]));
        assert_eq!((table[1].files, table[1].pitch_range), (1, [55, 55]));
    }
}
