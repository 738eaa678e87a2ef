//! The tutorials' tokens, exactly: what music21 10.5.1's `converter.parse` makes of
//! a MIDI file, and the two walks the note/chord tutorials take over it.
//!
//! - [`Walk::Flat`] (the Play Bach tutorial): every note, chord and rest of
//!   `score.flatten()`, in its order.
//! - [`Walk::FirstInstrument`] (Classical-Piano-Composer): the notes and chords of
//!   `instrument.partitionByInstrument(score).parts[0].recurse()`; no rests.
//!
//! A note is `str(pitch)`, music21's spelling (`C#4`, `E-4`, `B-4`: sharps but for E♭
//! and B♭, whatever the key); a chord is its pitch names in note-on order joined by
//! dots, or its normal order as pitch classes (`4.7.11`). Tokens compare as strings.
//!
//! It reads the file's own events, not fugue's [`Score`](crate::midi::Score): music21
//! pairs note-offs backwards (two overlapping notes of one pitch both end at the first
//! note-off), keeps note-on order inside a chord, and lets empty tracks, track names
//! and program changes shape rests and parts. What it reproduces, in order
//! (`tests/tutorials/check_tutorial_tokens.py` compares every chorale with music21):
//! - tracks with notes become parts; the others are the conductor, whose meters,
//!   keys and tempos reach only the parts after it;
//! - notes of one track starting less than a sixteenth of a beat apart and ending
//!   within one become a chord, which takes the *last* note's duration (music21 says
//!   so itself: "THIS IS A BUG"); notes that start together but end apart call for
//!   voices;
//! - offsets and durations snap to quarters or thirds of a beat as music21 computes
//!   them, in floating point ([`quantize`]);
//! - measures, voices, ties at bar lines and rests in every gap, with music21's
//!   container state ([`layout`]);
//! - the flattened order: offset, grace notes first, part, then the part's own order.
//!
//! Costs: a run of notes starting within a sixteenth of each other is compared pair
//! by pair, as music21 does (quadratic in the run's length); everything else is
//! linear or `n log n` in the events, within the reader's bounds.

mod instruments;
mod layout;
mod quantize;

use std::collections::BTreeMap;

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use num_rational::Ratio;

use self::instruments::{Instrument, Source, deduplicate, instrument};
use self::layout::{
    Counter, Item, Measure, Meter, TieKinds, make_measures, make_rests, make_ties, make_voices,
};
use crate::repr::note_chord::normal_order_of;

/// Quarter lengths, exactly.
type Q = Ratio<i64>;

/// Which of the tutorials' walks over the parsed score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// `score.flatten()`: notes, chords and rests of every part (Play Bach).
    Flat,
    /// `partitionByInstrument(score).parts[0].recurse()`: its notes and chords
    /// (Classical-Piano-Composer).
    FirstInstrument,
}

/// The elements music21 makes, by class (`classSortOrder` orders them at one offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instrument,
    Clef,
    Tempo,
    Key,
    TimeSignature((u8, u8)),
    Note,
    Chord,
    Rest,
}

impl Kind {
    fn class_order(self) -> i8 {
        match self {
            Kind::Instrument => -25,
            Kind::Clef => 0,
            Kind::Tempo => 1,
            Kind::Key => 2,
            Kind::TimeSignature(_) => 4,
            Kind::Note | Kind::Chord | Kind::Rest => 20,
        }
    }
}

#[derive(Debug, Clone)]
struct Element {
    kind: Kind,
    offset: Q,
    duration: Q,
    pitches: Vec<u8>,
    /// Channel 10: an unpitched note or percussion chord, never a token.
    percussion: bool,
    grace: bool,
    /// Insertion number (`globalSiteIndex`), for ties in sorting.
    inserted: u64,
    /// Removed from a container after joining another: music21 then sorts it as if
    /// at offset 0 when it is the last item compared on insertion.
    detached: bool,
    /// For instruments: the index into the part's instrument list.
    instrument: Option<usize>,
}

impl Element {
    fn new(kind: Kind, offset: Q, duration: Q, counter: &mut Counter) -> Element {
        Element {
            kind,
            offset,
            duration,
            pitches: Vec::new(),
            percussion: false,
            grace: false,
            inserted: counter.next(),
            detached: false,
            instrument: None,
        }
    }

    fn key(&self) -> (Q, i8, u8, u64) {
        (self.offset, self.kind.class_order(), u8::from(!self.grace), self.inserted)
    }

    fn end(&self) -> Q {
        self.offset + self.duration
    }
}

/// One part after parsing: its measures and what was stored at its end.
struct ParsedPart {
    measures: Vec<Measure>,
    at_end: Vec<Element>,
    instruments: Vec<Instrument>,
}

/// The tokens of the file for `walk`; chords as normal order when `normal_order`.
pub fn tokens(bytes: &[u8], walk: Walk, normal_order: bool) -> Result<Vec<String>, midly::Error> {
    let parts = parse(bytes)?;
    let elements = match walk {
        Walk::Flat => flat(&parts),
        Walk::FirstInstrument => first_instrument(&parts),
    };
    Ok(elements
        .into_iter()
        .filter(|element| !element.percussion)
        .filter_map(|element| match element.kind {
            Kind::Note => Some(pitch_name(element.pitches[0])),
            Kind::Chord if normal_order => {
                let classes: Vec<u8> = {
                    let mut classes: Vec<u8> = element.pitches.iter().map(|pitch| pitch % 12).collect();
                    classes.sort_unstable();
                    classes.dedup();
                    classes
                };
                let order = normal_order_of(&classes);
                Some(order.iter().map(u8::to_string).collect::<Vec<_>>().join("."))
            }
            Kind::Chord => {
                Some(element.pitches.iter().map(|&pitch| pitch_name(pitch)).collect::<Vec<_>>().join("."))
            }
            Kind::Rest if walk == Walk::Flat => Some("R".to_owned()),
            _ => None,
        })
        .collect())
}

/// music21's default spelling of a MIDI pitch.
pub fn pitch_name(pitch: u8) -> String {
    const NAMES: [&str; 12] = ["C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B"];
    format!("{}{}", NAMES[usize::from(pitch % 12)], i16::from(pitch / 12) - 1)
}

/// One track's events at absolute ticks.
struct TrackEvents<'a> {
    events: Vec<(u64, TrackEventKind<'a>)>,
}

impl TrackEvents<'_> {
    fn has_notes(&self) -> bool {
        self.events.iter().any(|(_, kind)| is_note_on(kind))
    }
}

fn is_note_on(kind: &TrackEventKind) -> bool {
    matches!(kind, TrackEventKind::Midi { message: MidiMessage::NoteOn { vel, .. }, .. } if vel.as_int() > 0)
}

fn parse(bytes: &[u8]) -> Result<Vec<ParsedPart>, midly::Error> {
    let smf = Smf::parse(bytes)?;
    let ticks_per_quarter = match smf.header.timing {
        Timing::Metrical(ticks) => i64::from(ticks.as_int().max(1)),
        Timing::Timecode(..) => 1,
    };
    let mut counter = Counter::default();
    let mut conductor: Vec<Element> = Vec::new();
    let mut parts = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        let track = TrackEvents {
            events: track
                .iter()
                .map(|event| {
                    tick += u64::from(event.delta.as_int());
                    (tick, event.kind)
                })
                .collect(),
        };
        let (mut metas, mut instruments) = meta_elements(&track, ticks_per_quarter, &mut counter);
        if !track.has_notes() {
            metas.sort_by_key(Element::key);
            quantize_elements(&mut metas);
            conductor.extend(
                metas
                    .into_iter()
                    .filter(|e| matches!(e.kind, Kind::TimeSignature(_) | Kind::Key | Kind::Tempo)),
            );
            continue;
        }
        remove_duplicate_instruments(&mut metas, &mut instruments);
        let (notes, voices_required) = chords(&track, ticks_per_quarter, &mut counter);
        let mut elements: Vec<Element> = metas.into_iter().chain(notes).collect();
        elements.sort_by_key(Element::key);
        quantize_elements(&mut elements);
        for copy in &conductor {
            elements.push(Element { inserted: counter.next(), ..copy.clone() });
        }
        elements.sort_by_key(Element::key);
        let meters = meters_of(&conductor, &elements);
        let (mut measures, at_end) = make_measures(elements, &meters, &mut counter);
        if voices_required {
            for measure in &mut measures {
                make_voices(measure, &mut counter);
            }
        }
        let part_meters = layout::part_meters(&measures, &at_end);
        make_ties(&mut measures, TieKinds::Notes, &part_meters, &mut counter);
        make_rests(&mut measures, &part_meters, &mut counter);
        parts.push(ParsedPart { measures, at_end, instruments });
    }
    Ok(parts)
}

/// The measures' meter: the conductor's time signatures if it has any, else the
/// part's own; 4/4 from 0 when none starts there.
fn meters_of(conductor: &[Element], elements: &[Element]) -> Vec<Meter> {
    let signatures = |elements: &[Element]| -> Vec<Meter> {
        elements
            .iter()
            .filter_map(|element| match element.kind {
                Kind::TimeSignature((numerator, denominator)) => Some(Meter {
                    offset: element.offset,
                    bar: Q::new(4 * i64::from(numerator), i64::from(denominator.max(1))),
                    signature: (numerator, denominator),
                }),
                _ => None,
            })
            .collect()
    };
    let mut meters = signatures(conductor);
    if meters.is_empty() {
        meters = signatures(elements);
    }
    if !meters.iter().any(|meter| meter.offset == Q::from(0)) {
        meters.insert(0, Meter { offset: Q::from(0), bar: Q::from(4), signature: (4, 4) });
    }
    meters.sort_by_key(|meter| meter.offset);
    meters
}

/// Time signatures, keys, tempos and instruments, at their raw offsets.
fn meta_elements(
    track: &TrackEvents,
    ticks_per_quarter: i64,
    counter: &mut Counter,
) -> (Vec<Element>, Vec<Instrument>) {
    let mut elements = Vec::new();
    let mut instruments = Vec::new();
    for &(tick, kind) in &track.events {
        let offset = Q::new(tick as i64, ticks_per_quarter);
        let (kind, made) = match kind {
            TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, _, _)) => {
                (Kind::TimeSignature((numerator, 1u8.checked_shl(u32::from(power)).unwrap_or(0))), None)
            }
            TrackEventKind::Meta(MetaMessage::KeySignature(..)) => (Kind::Key, None),
            TrackEventKind::Meta(MetaMessage::Tempo(_)) => (Kind::Tempo, None),
            TrackEventKind::Meta(MetaMessage::TrackName(name)) => {
                (Kind::Instrument, Some(instrument(Source::TrackName(&latin1(name)))))
            }
            TrackEventKind::Meta(MetaMessage::InstrumentName(name)) => {
                (Kind::Instrument, Some(instrument(Source::InstrumentName(&latin1(name)))))
            }
            TrackEventKind::Midi { channel, message: MidiMessage::ProgramChange { program } } => (
                Kind::Instrument,
                Some(instrument(Source::Program { program: program.as_int(), channel: channel.as_int() })),
            ),
            _ => continue,
        };
        let mut element = Element::new(kind, offset, Q::from(0), counter);
        if let Some(made) = made {
            element.instrument = Some(instruments.len());
            instruments.push(made);
        }
        elements.push(element);
    }
    (elements, instruments)
}

/// MIDI text as mido decodes it.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&byte| char::from(byte)).collect()
}

/// `instrument.deduplicate`, on the part's instruments in sorted order.
fn remove_duplicate_instruments(metas: &mut Vec<Element>, instruments: &mut [Instrument]) {
    let mut order: Vec<&Element> = metas.iter().filter(|e| e.kind == Kind::Instrument).collect();
    order.sort_by_key(|e| e.key());
    let indices: Vec<usize> = order.iter().filter_map(|e| e.instrument).collect();
    let mut sorted: Vec<Instrument> = indices.iter().map(|&i| instruments[i].clone()).collect();
    let removed = deduplicate(&mut sorted);
    for (position, &index) in indices.iter().enumerate() {
        instruments[index] = sorted[position].clone();
    }
    let removed: Vec<usize> = removed.into_iter().map(|position| indices[position]).collect();
    metas.retain(|e| e.instrument.is_none_or(|index| !removed.contains(&index)));
}

/// Notes paired as music21 pairs them (backwards: a note-off ends every earlier
/// note-on of its pitch and channel), then grouped into chords.
fn chords(track: &TrackEvents, ticks_per_quarter: i64, counter: &mut Counter) -> (Vec<Element>, bool) {
    // (on, off, pitch, channel) in note-on order.
    let mut notes: Vec<(u64, u64, u8, u8)> = Vec::new();
    let mut awaiting: BTreeMap<(u8, u8), u64> = BTreeMap::new();
    for &(tick, kind) in track.events.iter().rev() {
        let TrackEventKind::Midi { channel, message } = kind else { continue };
        let channel = channel.as_int();
        match message {
            MidiMessage::NoteOff { key, .. } => {
                awaiting.insert((key.as_int(), channel), tick);
            }
            MidiMessage::NoteOn { key, vel } if vel.as_int() == 0 => {
                awaiting.insert((key.as_int(), channel), tick);
            }
            MidiMessage::NoteOn { key, .. } => {
                if let Some(&off) = awaiting.get(&(key.as_int(), channel)) {
                    notes.push((tick, off, key.as_int(), channel));
                }
            }
            _ => {}
        }
    }
    notes.reverse();
    // Four times the finest divisor: within a sixteenth of a beat (as a float, like music21).
    let tolerance = ticks_per_quarter as f64 / 4.0;
    let mut gathered = vec![false; notes.len()];
    let mut voices_required = false;
    let mut elements = Vec::new();
    for i in 0..notes.len() {
        if gathered[i] {
            continue;
        }
        let (on, off, _, _) = notes[i];
        let mut group = vec![notes[i]];
        for j in i + 1..notes.len() {
            let (other_on, other_off, _, _) = notes[j];
            if (other_on as f64 - on as f64).abs() >= tolerance {
                break;
            }
            if (other_off as f64 - off as f64).abs() > tolerance {
                voices_required = true;
                continue;
            }
            group.push(notes[j]);
            gathered[j] = true;
        }
        let (last_on, last_off, _, _) = *group.last().expect("a group has its first note");
        let ticks = if group.len() == 1 { off - on } else { last_off - last_on };
        let kind = if group.len() == 1 { Kind::Note } else { Kind::Chord };
        let mut element = Element::new(
            kind,
            Q::new(on as i64, ticks_per_quarter),
            Q::new(ticks as i64, ticks_per_quarter),
            counter,
        );
        element.pitches = group.iter().map(|note| note.2).collect();
        element.percussion = group.iter().any(|note| note.3 == 9);
        element.grace = ticks == 0;
        elements.push(element);
    }
    (elements, voices_required)
}

fn quantize_elements(elements: &mut [Element]) {
    let mut offsets: Vec<Q> = elements.iter().map(|e| e.offset).collect();
    let mut durations: Vec<Q> = elements.iter().map(|e| e.duration).collect();
    let note_like: Vec<bool> =
        elements.iter().map(|e| matches!(e.kind, Kind::Note | Kind::Chord) && !e.grace).collect();
    quantize::quantize(&mut offsets, &mut durations, &note_like);
    for ((element, offset), duration) in elements.iter_mut().zip(offsets).zip(durations) {
        element.offset = offset;
        element.duration = duration;
    }
}

/// One part's notes, chords and rests in `flatten()` order, with global offsets:
/// each measure's items sorted, a voice's contents where the voice sorts.
fn flat_part(measures: &[Measure]) -> Vec<Element> {
    let mut flat = Vec::new();
    for measure in measures {
        for index in measure.container.sorted_indices() {
            match &measure.container.items[index] {
                Item::Voice(voice) => {
                    for inner in voice.container.sorted_indices() {
                        if let Item::Element(element) = &voice.container.items[inner] {
                            flat.push(Element { offset: measure.start + element.offset, ..element.clone() });
                        }
                    }
                }
                Item::Element(element) => {
                    flat.push(Element { offset: measure.start + element.offset, ..element.clone() });
                }
            }
        }
    }
    flat.retain(|element| matches!(element.kind, Kind::Note | Kind::Chord | Kind::Rest));
    flat
}

/// `score.flatten()`: by offset, grace notes first, then part, then the part's order.
fn flat(parts: &[ParsedPart]) -> Vec<Element> {
    let mut all: Vec<((Q, u8, usize, usize), Element)> = Vec::new();
    for (part, parsed) in parts.iter().enumerate() {
        for (position, element) in flat_part(&parsed.measures).into_iter().enumerate() {
            all.push(((element.offset, u8::from(!element.grace), part, position), element));
        }
    }
    all.sort_by_key(|(key, _)| *key);
    all.into_iter().map(|(_, element)| element).collect()
}

/// `partitionByInstrument(score).parts[0].recurse()`: the elements that sound under
/// the instruments named like the first instrument of the score.
fn first_instrument(parts: &[ParsedPart]) -> Vec<Element> {
    // Each part's instruments at global offsets, in the part's sorted order.
    let placed: Vec<Vec<(Q, &Instrument)>> = parts
        .iter()
        .map(|part| {
            let mut placed = Vec::new();
            for measure in &part.measures {
                for index in measure.container.sorted_indices() {
                    if let Item::Element(element @ Element { kind: Kind::Instrument, .. }) =
                        &measure.container.items[index]
                    {
                        let instrument =
                            &part.instruments[element.instrument.expect("instruments are indexed")];
                        placed.push((measure.start + element.offset, instrument));
                    }
                }
            }
            for element in part.at_end.iter().filter(|e| e.kind == Kind::Instrument) {
                let instrument = &part.instruments[element.instrument.expect("instruments are indexed")];
                placed.push((element.offset, instrument));
            }
            placed
        })
        .collect();
    let flats: Vec<Vec<Element>> = parts.iter().map(|part| flat_part(&part.measures)).collect();
    if placed.iter().all(Vec::is_empty) {
        // No instrument anywhere: music21 returns the parts as they are.
        let mut first = flats.into_iter().next().unwrap_or_default();
        first.sort_by_key(|element| (element.offset, u8::from(!element.grace)));
        return first;
    }
    // The first name in score order; an unnamed instrument counts as "" (music21
    // checks `name in names` with None, which never matches, then keys it by "").
    let mut names: Vec<String> = Vec::new();
    for (_, instrument) in placed.iter().flatten() {
        let key = instrument.instrument_name.clone().unwrap_or_default();
        if !names.contains(&key) {
            names.push(key);
        }
    }
    let target = names.first().cloned().unwrap_or_default();
    // (offset, not grace, part, instrument, position in the part): recurse()'s order.
    type Placed = (Q, u8, usize, usize, usize);
    let mut picked: Vec<(Placed, Element)> = Vec::new();
    for (part, (flat, instruments)) in flats.iter().zip(&placed).enumerate() {
        let total = flat
            .iter()
            .map(Element::end)
            .chain(instruments.iter().map(|(at, _)| *at))
            .max()
            .unwrap_or(Q::from(0));
        for (k, (start, instrument)) in instruments.iter().enumerate() {
            let end = instruments.get(k + 1).map_or(total, |(next, _)| *next);
            if instrument.instrument_name.clone().unwrap_or_default() != target {
                continue;
            }
            for (position, element) in flat.iter().enumerate() {
                let offset = element.offset;
                let within = *start <= offset && offset < end;
                let at_an_empty_span = *start == end && offset == end && element.duration == Q::from(0);
                if within || at_an_empty_span {
                    picked.push(((offset, u8::from(!element.grace), part, k, position), element.clone()));
                }
            }
        }
    }
    picked.sort_by_key(|(key, _)| *key);
    picked.into_iter().map(|(_, element)| element).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{Note, Part, Score, write};

    fn tokens_of(parts: Vec<Part>, walk: Walk) -> Vec<String> {
        tokens(&write(&Score::of_parts(480, parts)), walk, false).unwrap()
    }

    fn note(pitch: u8, start: u64, duration: u64) -> Note {
        Note { pitch, velocity: 80, start, duration }
    }

    #[test]
    fn spelling_is_music21s() {
        assert_eq!([60, 61, 63, 66, 70].map(pitch_name), ["C4", "C#4", "E-4", "F#4", "B-4"]);
    }

    #[test]
    fn a_melody_with_a_gap_gives_its_notes_and_the_rests_of_each_bar() {
        // C4 for a beat, nothing for a beat, D4 for two; then the bar is full.
        let melody = Part::new(0, 0, vec![note(60, 0, 480), note(62, 960, 960)]);
        assert_eq!(tokens_of(vec![melody], Walk::Flat), ["C4", "R", "D4"]);
    }

    #[test]
    fn simultaneous_notes_of_one_track_are_a_chord_and_of_two_tracks_two_tokens() {
        let chord = Part::new(0, 0, vec![note(60, 0, 1920), note(64, 0, 1920), note(67, 0, 1920)]);
        assert_eq!(tokens_of(vec![chord.clone()], Walk::Flat), ["C4.E4.G4"]);
        let upper = Part::new(0, 0, vec![note(72, 0, 1920)]);
        let lower = Part::new(1, 0, vec![note(48, 0, 1920)]);
        assert_eq!(tokens_of(vec![upper, lower], Walk::Flat), ["C5", "C3"]);
        let normal = tokens(&write(&Score::of_parts(480, vec![chord])), Walk::Flat, true).unwrap();
        assert_eq!(normal, ["0.4.7"]);
    }

    #[test]
    fn a_note_across_the_bar_line_is_two_tokens() {
        let tied = Part::new(0, 0, vec![note(60, 1440, 960)]);
        assert_eq!(tokens_of(vec![tied], Walk::Flat), ["R", "C4", "C4", "R"]);
    }
}
