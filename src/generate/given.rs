//! Harmonizing: a part the user brings, placed on the model's grid as the very
//! tokens that write it, so that the decoder can force it note for note while the
//! model writes the other parts around it (see [`super::decoder`]).

use std::collections::{BTreeMap, HashMap};

use super::decoder::{EventsGrammar, PlannedPart};
use super::request::{
    GivenDecoding, Invalid, Length, MAX_BARS, MAX_PRIMER_NOTES, PartReference, ValidatedRequest,
};
use crate::midi::Score;
use crate::repr::events::{Token, bar_units, velocity_bin};

/// A given part, ready for the decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct GivenPart {
    /// Its index among the piece's parts (its `Part_i`).
    pub part: u8,
    /// Per onset (grid units from the start), the tokens that write its notes
    /// there, lowest pitch first: `Pitch Vel Dur…` per note.
    pub schedule: BTreeMap<u64, Vec<Token>>,
    /// Each note as it comes back, by (onset, pitch): (duration in grid units,
    /// velocity), exactly as given once on the grid.
    pub notes: BTreeMap<(u64, u8), (u64, u8)>,
    /// Bars the piece lasts: to the bar line at or after the given part's end.
    pub bars: u32,
    pub decoding: GivenDecoding,
}

/// Places the given part (see [`place`]) and lets it set the piece: its meter (the
/// request's, else the file's, else 4/4), its tempo (the request's, else the
/// file's, else the model's own), and its length, to the bar line after it.
pub fn prepare(
    validated: &mut ValidatedRequest,
    score: &Score,
    which: &PartReference,
    decoding: GivenDecoding,
    planned: &[PlannedPart],
    grammar: &EventsGrammar,
    field: &str,
) -> Result<GivenPart, Invalid> {
    let meter = validated
        .time_signature
        .or_else(|| score.time_signatures.first().map(|meter| (meter.numerator, meter.denominator)))
        .unwrap_or((4, 4));
    let placed = place(score, which, planned, decoding, grammar, meter, field)?;
    validated.time_signature = Some(meter);
    validated.tempo_bpm = validated.tempo_bpm.or_else(|| score.tempos.first().map(|tempo| tempo.bpm()));
    validated.length = Length::Bars(placed.bars);
    validated.end_on_bar = true;
    Ok(placed)
}

/// The given notes (the first part of `score`) placed among the piece's `planned`
/// parts on the model's grid, in bars of `meter`. Errors name `field` (the notes
/// or the MIDI file they came from) or `given.part`.
pub fn place(
    score: &Score,
    which: &PartReference,
    planned: &[PlannedPart],
    decoding: GivenDecoding,
    grammar: &EventsGrammar,
    meter: (u8, u8),
    field: &str,
) -> Result<GivenPart, Invalid> {
    let part = part_index(which, planned)?;
    let fault = |message: String| Invalid { field: field.to_owned(), message };
    let notes = score.parts.first().map(|part| part.notes.as_slice()).unwrap_or_default();
    if notes.is_empty() || notes.len() > MAX_PRIMER_NOTES {
        return Err(fault(format!("must hold 1 to {MAX_PRIMER_NOTES} notes; this holds {}", notes.len())));
    }
    let grid = u64::from(grammar.config().grid_per_beat);
    let tpb = u64::from(score.ticks_per_beat.max(1));
    let to_units = |tick: u64| (tick * grid + tpb / 2) / tpb;
    let bar = bar_units(meter.0, meter.1, grammar.config().grid_per_beat);
    let positions: Vec<u64> = (0..bar).filter(|&p| grammar.id_of(Token::Pos(p as u16)).is_some()).collect();
    if positions.is_empty() {
        return Err(fault("the model knows no onset position in this meter".to_owned()));
    }
    let known_pitches: Vec<u8> = (0..=127).filter(|&p| grammar.id_of(Token::Pitch(p)).is_some()).collect();
    let velocities: Vec<u8> = (0..=127).filter(|&v| grammar.id_of(Token::Vel(v)).is_some()).collect();
    let durations: Vec<u16> = (1..=grammar.config().max_duration_units)
        .filter(|&d| grammar.id_of(Token::Dur(d)).is_some())
        .collect();
    if velocities.is_empty() || durations.is_empty() {
        return Err(fault("the model's vocabulary cannot write a note".to_owned()));
    }
    let mut spelled: HashMap<u64, Vec<u16>> = HashMap::new();
    let mut placed: BTreeMap<(u64, u8), (u64, u8)> = BTreeMap::new();
    for (index, note) in notes.iter().enumerate() {
        if known_pitches.binary_search(&note.pitch).is_err() {
            let (low, high) =
                (known_pitches.first().copied().unwrap_or(0), known_pitches.last().copied().unwrap_or(0));
            return Err(fault(format!(
                "note {index}: pitch {} is one the model never learned; it knows {low} to {high}",
                note.pitch
            )));
        }
        let onset = to_units(note.start);
        let in_bar = onset % bar;
        let nearest = *positions.iter().min_by_key(|&&p| p.abs_diff(in_bar)).expect("positions is not empty");
        let onset = onset - in_bar + nearest;
        let duration = to_units(note.end()).saturating_sub(onset).max(1);
        let entry = placed.entry((onset, note.pitch)).or_insert((duration, note.velocity));
        entry.0 = entry.0.max(duration);
    }
    let end = placed.iter().map(|(&(onset, _), &(duration, _))| onset + duration).max().unwrap_or(0);
    let bars = end.div_ceil(bar);
    if bars > u64::from(MAX_BARS) {
        return Err(fault(format!("lasts {bars} bars; a piece may last at most {MAX_BARS}")));
    }
    let mut schedule: BTreeMap<u64, Vec<Token>> = BTreeMap::new();
    for (&(onset, pitch), &(duration, velocity)) in &placed {
        let tokens = schedule.entry(onset).or_default();
        tokens.push(Token::Pitch(pitch));
        let bin = velocity_bin(velocity);
        let nearest = velocities.iter().min_by_key(|&&v| v.abs_diff(bin)).expect("velocities is not empty");
        tokens.push(Token::Vel(*nearest));
        let parts = spelled.entry(duration).or_insert_with(|| spell(duration, &durations));
        tokens.extend(parts.iter().map(|&d| Token::Dur(d)));
    }
    Ok(GivenPart { part, schedule, notes: placed, bars: bars.max(1) as u32, decoding })
}

/// The piece's part the reference names: by index, or by name in any case.
fn part_index(which: &PartReference, planned: &[PlannedPart]) -> Result<u8, Invalid> {
    let names = || {
        let named: Vec<&str> = planned.iter().filter_map(|part| part.declared.name.as_deref()).collect();
        named.join(", ")
    };
    let found = match which {
        PartReference::Index(index) => Some(usize::from(*index)).filter(|&index| index < planned.len()),
        PartReference::Name(name) => planned.iter().position(|part| {
            part.declared.name.as_deref().is_some_and(|known| known.eq_ignore_ascii_case(name.trim()))
        }),
    };
    found.map(|index| index as u8).ok_or_else(|| Invalid {
        field: "given.part".to_owned(),
        message: format!(
            "the piece's parts are {} (0 to {}); name one, or list it in `parts`",
            names(),
            planned.len().saturating_sub(1)
        ),
    })
}

/// `duration` as the fewest `Dur` tokens the model knows that add up to it, or,
/// when none do, to the nearest length they can make.
fn spell(duration: u64, known: &[u16]) -> Vec<u16> {
    let largest = u64::from(*known.last().expect("known durations are not empty"));
    let limit = (duration + largest) as usize;
    // fewest[s]: the fewest tokens summing to s, and the last of them.
    let mut fewest: Vec<Option<(u32, u16)>> = vec![None; limit + 1];
    fewest[0] = Some((0, 0));
    for sum in 1..=limit {
        fewest[sum] = known
            .iter()
            .filter(|&&d| usize::from(d) <= sum)
            .filter_map(|&d| fewest[sum - usize::from(d)].map(|(count, _)| (count + 1, d)))
            .min_by_key(|&(count, _)| count);
    }
    let target = (1..=limit)
        .filter(|&sum| fewest[sum].is_some())
        .min_by_key(|&sum| (sum.abs_diff(duration as usize), sum))
        .expect("the smallest known duration is reachable");
    let mut tokens = Vec::new();
    let mut sum = target;
    while sum > 0 {
        let (_, last) = fewest[sum].expect("reachable sums have a last token");
        tokens.push(last);
        sum -= usize::from(last);
    }
    tokens.sort_unstable_by(|a, b| b.cmp(a));
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_spelled_with_the_fewest_known_tokens_or_the_nearest_length() {
        assert_eq!(spell(24, &[6, 12, 24, 96]), [24]);
        assert_eq!(spell(120, &[6, 12, 24, 96]), [96, 24]);
        assert_eq!(spell(36, &[12, 24, 96]), [24, 12]);
        // 30 cannot be made of 12s and 24s: the nearest length is 24 (ties go short).
        assert_eq!(spell(30, &[12, 24]), [24]);
        assert_eq!(spell(1, &[12, 24]), [12]);
    }
}
