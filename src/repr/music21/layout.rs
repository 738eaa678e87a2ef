//! Measures, voices, ties and rests as music21 10.5.1 makes them for one part
//! (`makeMeasures`, `makeVoices`, `makeTies`, `makeRests`), down to the container
//! state that leaks into its output: insertion order, the `isSorted` flag and the
//! cached `highestTime`. A chord shortened at a bar line does not tell its container,
//! so a stale cached end can move every later measure of the part (this decides
//! `bwv248.23-2`). Offsets in a container are relative to it; a voice sits at 0.

use std::cmp::Ordering;

use super::quantize::{cmp_exact, to_f64};
use super::{Element, Kind, Q};

/// The sort key of music21's `sortTuple`: (offset, class order, not grace, insertion).
type SortKey = (Q, i8, u8, u64);

pub enum Item {
    Element(Element),
    Voice(Voice),
}

impl Item {
    fn key(&self) -> SortKey {
        match self {
            Item::Element(element) => element.key(),
            Item::Voice(voice) => (Q::from(0), 5, 1, voice.inserted),
        }
    }

    fn offset(&self) -> Q {
        match self {
            Item::Element(element) => element.offset,
            Item::Voice(_) => Q::from(0),
        }
    }
}

/// The global insertion counter (`globalSiteIndex`): every element made or inserted
/// takes the next number.
#[derive(Default)]
pub struct Counter(u64);

impl Counter {
    pub fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// What a measure and a voice share: items in insertion order, and the state.
#[derive(Default)]
pub struct Container {
    pub items: Vec<Item>,
    sorted_flag: bool,
    cached_end: Option<Q>,
}

impl Container {
    fn new() -> Container {
        Container { items: Vec::new(), sorted_flag: true, cached_end: None }
    }

    /// `highestTime`, cached as music21 caches it.
    pub fn high(&mut self) -> Q {
        if let Some(end) = self.cached_end {
            return end;
        }
        let mut end = Q::from(0);
        for item in &mut self.items {
            let item_end = match item {
                Item::Element(element) => element.end(),
                Item::Voice(voice) => voice.container.high(),
            };
            end = end.max(item_end);
        }
        self.cached_end = Some(end);
        end
    }

    fn changed(&mut self) {
        self.cached_end = None;
    }

    /// Iterating an unsorted stream sorts it (and drops the cache). True when it did,
    /// so that a voice's measure can drop its cache too.
    pub fn sort(&mut self) -> bool {
        if self.sorted_flag {
            return false;
        }
        self.items.sort_by_key(Item::key);
        self.sorted_flag = true;
        self.changed();
        true
    }

    /// `Stream.insert`: appends, and decides whether the stream is still sorted the
    /// way `coreInsert` does, comparing `float(offset)` exactly with fractions.
    fn insert(&mut self, mut item: Item, offset: Q, counter: &mut Counter) {
        let mut still_sorted = false;
        if self.sorted_flag {
            let end = self.high();
            let at = to_f64(offset);
            match cmp_exact(end, at) {
                Ordering::Less => still_sorted = true,
                Ordering::Equal => {
                    still_sorted = match self.items.last() {
                        None => true,
                        Some(last) => {
                            let last_key = match last {
                                Item::Element(element) if element.detached => {
                                    (Q::from(0), element.kind.class_order(), u8::from(!element.grace), 0)
                                }
                                other => other.key(),
                            };
                            let (class_order, not_grace) = match &item {
                                Item::Element(element) => {
                                    (element.kind.class_order(), u8::from(!element.grace))
                                }
                                Item::Voice(_) => (5, 1),
                            };
                            // (float offset, class, grace, +infinity) against the last key.
                            match cmp_exact(last_key.0, at) {
                                Ordering::Less => true,
                                Ordering::Greater => false,
                                // The new key ends in +infinity: equal so far means sorted.
                                Ordering::Equal => (last_key.1, last_key.2) <= (class_order, not_grace),
                            }
                        }
                    }
                }
                Ordering::Greater => {}
            }
        }
        match &mut item {
            Item::Element(element) => {
                element.offset = offset;
                element.detached = false;
                element.inserted = counter.next();
            }
            Item::Voice(voice) => voice.inserted = counter.next(),
        }
        self.items.push(item);
        self.changed();
        self.sorted_flag = still_sorted;
    }

    fn lowest(&self) -> Q {
        self.items.iter().map(Item::offset).min().unwrap_or(Q::from(0))
    }

    fn has_voices(&self) -> bool {
        self.items.iter().any(|item| matches!(item, Item::Voice(_)))
    }

    /// Sorted copies of the keys and indices, without touching the state.
    pub fn sorted_indices(&self) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..self.items.len()).collect();
        indices.sort_by_key(|&index| self.items[index].key());
        indices
    }
}

pub struct Voice {
    pub container: Container,
    inserted: u64,
}

pub struct Measure {
    pub start: Q,
    pub bar: Q,
    pub container: Container,
}

impl Measure {
    /// The positions of the measure's voices, after sorting it (music21's `voices`
    /// sorts, and that sort is part of the state that shows in the output).
    fn voice_indices(&mut self) -> Vec<usize> {
        self.container.sort();
        (0..self.container.items.len())
            .filter(|&i| matches!(self.container.items[i], Item::Voice(_)))
            .collect()
    }

    fn voice(&mut self, index: usize) -> &mut Container {
        match &mut self.container.items[index] {
            Item::Voice(voice) => &mut voice.container,
            Item::Element(_) => unreachable!("voice indices point at voices"),
        }
    }
}

/// A meter change: where, the bar length in quarters, and the signature.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    pub offset: Q,
    pub bar: Q,
    pub signature: (u8, u8),
}

/// `makeMeasures`: measures until the part's last end, each element in the measure
/// it starts in. Returns the measures and the elements stored at the end (zero-length
/// ones at the very end), placed at the measures' highest time.
pub fn make_measures(
    elements: Vec<Element>,
    meters: &[Meter],
    counter: &mut Counter,
) -> (Vec<Measure>, Vec<Element>) {
    let last_end = elements.iter().map(Element::end).max().unwrap_or(Q::from(0));
    let mut measures: Vec<Measure> = Vec::new();
    let (mut start, mut last_meter) = (Q::from(0), None);
    loop {
        // The last meter at or before `start` (later in the list wins on a tie).
        let meter_index = meters.iter().rposition(|meter| meter.offset <= start).expect("a meter at 0");
        let meter = meters[meter_index];
        counter.next(); // the measure itself
        let mut measure = Measure { start, bar: meter.bar, container: Container::new() };
        if last_meter != Some(meter_index) {
            let signature =
                Element::new(Kind::TimeSignature(meter.signature), Q::from(0), Q::from(0), counter);
            measure.container.insert(Item::Element(signature), Q::from(0), counter);
        }
        last_meter = Some(meter_index);
        if measures.is_empty() {
            let clef = Element::new(Kind::Clef, Q::from(0), Q::from(0), counter);
            measure.container.insert(Item::Element(clef), Q::from(0), counter);
        }
        start += meter.bar;
        measures.push(measure);
        if start >= last_end {
            break;
        }
    }
    let mut at_end = Vec::new();
    for element in elements {
        let offset = element.offset;
        // Measures are contiguous and ascending: the last one starting at or before.
        let index = measures.partition_point(|measure| measure.start <= offset);
        let target = index.checked_sub(1).filter(|&i| offset < measures[i].start + measures[i].bar);
        let Some(target) = target else {
            at_end.push(element);
            continue;
        };
        let measure = &mut measures[target];
        if matches!(element.kind, Kind::TimeSignature(_)) && offset == measure.start {
            continue;
        }
        let relative = offset - measure.start;
        measure.container.insert(Item::Element(element), relative, counter);
    }
    if !at_end.is_empty() {
        let end = measures.iter_mut().map(|measure| measure.start + measure.container.high()).max();
        for element in &mut at_end {
            element.offset = end.unwrap_or(Q::from(0));
        }
    }
    (measures, at_end)
}

/// `makeVoices` on a measure whose notes overlap: each note goes to the first voice
/// that has ended by its onset.
pub fn make_voices(measure: &mut Measure, counter: &mut Counter) {
    measure.container.sort();
    let note_like =
        |item: &Item| matches!(item, Item::Element(e) if matches!(e.kind, Kind::Note | Kind::Chord));
    let mut spans: Vec<(Q, Q)> = measure
        .container
        .items
        .iter()
        .filter(|item| note_like(item))
        .map(|item| match item {
            Item::Element(element) => (element.offset, element.end()),
            Item::Voice(_) => unreachable!(),
        })
        .collect();
    spans.sort();
    if !spans.windows(2).any(|pair| pair[1].0 < pair[0].1) {
        return;
    }
    let mut voices: Vec<Voice> = Vec::new();
    let items = std::mem::take(&mut measure.container.items);
    let mut kept = Vec::new();
    for item in items {
        let Item::Element(element) = item else {
            kept.push(item);
            continue;
        };
        if !matches!(element.kind, Kind::Note | Kind::Chord) {
            kept.push(Item::Element(element));
            continue;
        }
        let offset = element.offset;
        let free = voices.iter_mut().position(|voice| voice.container.high() <= offset);
        let index = free.unwrap_or_else(|| {
            voices.push(Voice { container: Container::new(), inserted: counter.next() });
            voices.len() - 1
        });
        voices[index].container.insert(Item::Element(element), offset, counter);
        // Removed from the measure after it joined the voice: it is left detached.
        if let Some(Item::Element(last)) = voices[index].container.items.last_mut() {
            last.detached = true;
        }
    }
    measure.container.items = kept;
    measure.container.changed();
    for voice in voices {
        measure.container.insert(Item::Voice(voice), Q::from(0), counter);
    }
    measure.container.sort();
}

/// The bar length `makeTies` uses at `offset`: the part's meters, the latest at or
/// before it (on a tie, the later one).
fn tie_bar(meters: &[(Q, (u8, u8))], offset: Q) -> Q {
    let mut best: Option<(Q, (u8, u8))> = None;
    for &(at, signature) in meters {
        if at <= offset && best.is_none_or(|(best_at, _)| at >= best_at) {
            best = Some((at, signature));
        }
    }
    let (numerator, denominator) = best.map_or((4, 4), |(_, signature)| signature);
    Q::new(4 * i64::from(numerator), i64::from(denominator))
}

/// Which elements `makeTies` splits at bar lines.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TieKinds {
    Notes,
    Rests,
}

impl TieKinds {
    fn includes(self, kind: Kind) -> bool {
        match self {
            TieKinds::Notes => matches!(kind, Kind::Note | Kind::Chord),
            TieKinds::Rests => kind == Kind::Rest,
        }
    }
}

/// Where a split-off remainder goes in the next measure.
enum Destination {
    Measure,
    FirstVoice,
}

/// `makeTies`: splits what crosses its bar line; the remainder goes to the next
/// measure (appended when there is none).
pub fn make_ties(
    measures: &mut Vec<Measure>,
    kinds: TieKinds,
    meters: &[(Q, (u8, u8))],
    counter: &mut Counter,
) {
    for measure in measures.iter_mut() {
        measure.container.sort();
        let mut voice_sorted = false;
        for item in &mut measure.container.items {
            if let Item::Voice(voice) = item {
                voice_sorted |= voice.container.sort();
            }
        }
        if voice_sorted {
            measure.container.changed();
        }
    }
    let mut index = 0;
    while index < measures.len() {
        let bar = tie_bar(meters, measures[index].start);
        let appended = index + 1 == measures.len();
        if appended {
            let (start, length) = (measures[index].start + bar, measures[index].bar);
            counter.next(); // the new measure is an object music21 numbers, used or not
            measures.push(Measure { start, bar: length, container: Container::new() });
        }
        let next_has_voices = measures[index + 1].container.has_voices();
        let has_voices = measures[index].container.has_voices();
        let bundle: Vec<Option<usize>> = if has_voices {
            measures[index].voice_indices().into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        let mut used_appended = false;
        for voice in bundle {
            let (current, rest) = measures.split_at_mut(index + 1);
            let (measure, next) = (&mut current[index], &mut rest[0]);
            let split_offs = split_at_bar(measure, voice, bar, kinds, counter);
            for remainder in split_offs {
                let destination = match (next_has_voices, has_voices) {
                    (true, true) | (false, false) => Destination::Measure,
                    (true, false) => Destination::FirstVoice,
                    (false, true) => {
                        move_notes_to_voice(next, counter);
                        Destination::FirstVoice
                    }
                };
                match destination {
                    Destination::Measure => {
                        next.container.insert(Item::Element(remainder), Q::from(0), counter)
                    }
                    Destination::FirstVoice => {
                        let first = next.voice_indices()[0];
                        next.voice(first).insert(Item::Element(remainder), Q::from(0), counter);
                        next.container.changed();
                    }
                }
                used_appended = true;
            }
        }
        if appended && !used_appended {
            measures.pop();
        }
        index += 1;
    }
    for measure in measures.iter_mut() {
        flatten_unnecessary_voices(measure, counter);
    }
}

/// Splits the elements of the measure (or of one of its voices) that cross `bar`,
/// returning the remainders in order.
fn split_at_bar(
    measure: &mut Measure,
    voice: Option<usize>,
    bar: Q,
    kinds: TieKinds,
    counter: &mut Counter,
) -> Vec<Element> {
    let container = match voice {
        Some(index) => measure.voice(index),
        None => &mut measure.container,
    };
    let mut informed = container.sort();
    let mut remainders = Vec::new();
    for item in &mut container.items {
        let Item::Element(element) = item else { continue };
        if !kinds.includes(element.kind) || element.end() - bar <= Q::from(0) || element.offset >= bar {
            continue;
        }
        // A copy of the element from the bar line on, as a new object (a new number).
        let remainder = Element {
            pitches: element.pitches.clone(),
            percussion: element.percussion,
            grace: element.grace,
            ..Element::new(element.kind, Q::from(0), element.end() - bar, counter)
        };
        element.duration = bar - element.offset;
        // A chord's duration setter does not tell its container; everything else does.
        informed |= element.kind != Kind::Chord || element.percussion;
        remainders.push(remainder);
    }
    if informed {
        container.changed();
        if voice.is_some() {
            measure.container.changed();
        }
    }
    remainders
}

/// `moveNotesToVoices`: the measure's notes, chords and rests into one new voice.
fn move_notes_to_voice(measure: &mut Measure, counter: &mut Counter) {
    let mut voice = Voice { container: Container::new(), inserted: counter.next() };
    measure.container.sort();
    let items = std::mem::take(&mut measure.container.items);
    let mut kept = Vec::new();
    for item in items {
        match item {
            Item::Element(element) if matches!(element.kind, Kind::Note | Kind::Chord | Kind::Rest) => {
                let offset = element.offset;
                voice.container.insert(Item::Element(element), offset, counter);
                if let Some(Item::Element(last)) = voice.container.items.last_mut() {
                    last.detached = true;
                }
            }
            other => kept.push(other),
        }
    }
    measure.container.items = kept;
    measure.container.changed();
    measure.container.insert(Item::Voice(voice), Q::from(0), counter);
}

/// `flattenUnnecessaryVoices`: empty voices go; a single voice left is dissolved.
fn flatten_unnecessary_voices(measure: &mut Measure, counter: &mut Counter) {
    if !measure.container.has_voices() {
        return;
    }
    measure.container.sort();
    let before = measure.container.items.len();
    measure
        .container
        .items
        .retain(|item| !matches!(item, Item::Voice(voice) if voice.container.items.is_empty()));
    if measure.container.items.len() != before {
        measure.container.changed();
    }
    let voices: Vec<usize> = (0..measure.container.items.len())
        .filter(|&i| matches!(measure.container.items[i], Item::Voice(_)))
        .collect();
    if let [only] = voices[..] {
        let Item::Voice(mut voice) = measure.container.items.remove(only) else { unreachable!() };
        voice.container.sort();
        for item in voice.container.items {
            let Item::Element(mut element) = item else { continue };
            element.inserted = counter.next();
            measure.container.items.push(Item::Element(element));
        }
        measure.container.changed();
        measure.container.sorted_flag = false;
    }
}

/// Every time signature in the part, at its offset (measures', then those stored at
/// the end); 4/4 at 0 when none is there.
pub fn part_meters(measures: &[Measure], at_end: &[Element]) -> Vec<(Q, (u8, u8))> {
    let mut meters = Vec::new();
    for measure in measures {
        for index in measure.container.sorted_indices() {
            if let Item::Element(Element { kind: Kind::TimeSignature(signature), offset, .. }) =
                &measure.container.items[index]
            {
                meters.push((measure.start + offset, *signature));
            }
        }
    }
    meters.extend(at_end.iter().filter_map(|element| match element.kind {
        Kind::TimeSignature(signature) => Some((element.offset, signature)),
        _ => None,
    }));
    if meters.iter().map(|&(at, _)| at).min().is_none_or(|first| first > Q::from(0)) {
        meters.insert(0, (Q::from(0), (4, 4)));
    }
    meters
}

/// `makeRests(fillGaps=True, timeRangeFromBarDuration=True)`, then ties for rests,
/// then measures re-placed end to end by their (possibly stale) highest times.
pub fn make_rests(measures: &mut Vec<Measure>, meters: &[(Q, (u8, u8))], counter: &mut Counter) {
    for measure in measures.iter_mut() {
        let bar = measure.bar;
        for index in measure.voice_indices() {
            if fill_rests(measure.voice(index), bar, counter) {
                measure.container.changed();
            }
        }
        fill_rests(&mut measure.container, bar, counter);
    }
    make_ties(measures, TieKinds::Rests, meters, counter);
    let mut start = Q::from(0);
    for measure in measures.iter_mut() {
        measure.start = start;
        start += measure.container.high();
    }
}

/// Rests before the first item, after the (possibly stale) end up to the bar, and in
/// every gap; zero-length items (key, tempo, instrument) split a gap in two. True
/// when the container changed (a voice's measure then drops its cache too).
fn fill_rests(container: &mut Container, bar: Q, counter: &mut Counter) -> bool {
    let (low, high) = (container.lowest(), container.high());
    let rest = |duration: Q, counter: &mut Counter| {
        Item::Element(Element::new(Kind::Rest, Q::from(0), duration, counter))
    };
    let mut changed = false;
    if low > Q::from(0) {
        let item = rest(low, counter);
        container.insert(item, Q::from(0), counter);
        changed = true;
    }
    if bar - high > Q::from(0) {
        let item = rest(bar - high, counter);
        container.insert(item, high, counter);
        changed = true;
    }
    changed |= container.sort();
    let mut reached = Q::from(0);
    let mut gaps = Vec::new();
    for item in &mut container.items {
        let (offset, duration) = match item {
            Item::Element(element) => (element.offset, element.duration),
            Item::Voice(voice) => (Q::from(0), voice.container.high()),
        };
        if offset > reached {
            gaps.push((reached, offset - reached));
        }
        reached = reached.max(offset + duration);
    }
    changed |= !gaps.is_empty();
    for (offset, duration) in gaps {
        let item = rest(duration, counter);
        container.insert(item, offset, counter);
    }
    changed
}
