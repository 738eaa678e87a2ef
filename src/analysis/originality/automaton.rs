//! A suffix automaton over `u32` symbols (Blumer et al. 1985): the smallest
//! automaton that accepts every substring of a text.
//!
//! Each state holds a set of substrings that end at the same positions in the text;
//! its suffix link leads to the state of its longest suffix that ends elsewhere too.
//! For a text of n symbols it has at most 2n − 1 states and 3n − 4 edges, and
//! following a query through it (`extend`) finds, at every position, the longest
//! substring of the text that ends there, in amortised constant steps per symbol.
//!
//! Built once with growable per-state edge lists, then frozen into flat arrays
//! (edges of a state contiguous, sorted by symbol, found by binary search): about
//! 16 bytes per state and 8 per edge, and nothing to rebuild after deserialising.

use serde::{Deserialize, Serialize};

const ROOT: u32 = 0;
/// The root's suffix link.
const NO_LINK: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub struct SuffixAutomaton {
    /// Per state: the length of the longest substring it holds.
    longest: Vec<u32>,
    /// Per state: its suffix link; the root has none.
    link: Vec<u32>,
    /// Per state: the text position where its substrings first end.
    first_end: Vec<u32>,
    /// Per state s: its edges are `edge_symbols[edge_start[s]..edge_start[s + 1]]`.
    edge_start: Vec<u32>,
    edge_symbols: Vec<u32>,
    edge_targets: Vec<u32>,
}

/// How much of a query the automaton has matched: the longest suffix of the query
/// so far that occurs in the text, and the state holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub state: u32,
    /// Symbols matched.
    pub length: u32,
}

impl Match {
    pub const NONE: Match = Match { state: ROOT, length: 0 };
}

impl SuffixAutomaton {
    pub fn build(text: &[u32]) -> SuffixAutomaton {
        let mut building = Building::default();
        for (position, &symbol) in text.iter().enumerate() {
            building.append(symbol, position as u32);
        }
        building.freeze()
    }

    pub fn states(&self) -> usize {
        self.longest.len()
    }

    pub fn edges(&self) -> usize {
        self.edge_symbols.len()
    }

    /// Bytes of the arrays, as held in memory.
    pub fn heap_bytes(&self) -> usize {
        4 * (self.longest.len()
            + self.link.len()
            + self.first_end.len()
            + self.edge_start.len()
            + self.edge_symbols.len()
            + self.edge_targets.len())
    }

    /// The largest text position any state names, for the index's own checks.
    pub fn last_position(&self) -> u32 {
        self.first_end.iter().copied().max().unwrap_or(0)
    }

    /// The text position where the matched substring first ends.
    pub fn first_end(&self, matched: Match) -> u32 {
        self.first_end[matched.state as usize]
    }

    /// The match after the query grows by `symbol`: the longest suffix of the
    /// query that occurs in the text, however short.
    pub fn extend(&self, matched: Match, symbol: u32) -> Match {
        let Match { mut state, mut length } = matched;
        loop {
            if let Some(target) = self.target(state, symbol) {
                return Match { state: target, length: length + 1 };
            }
            if state == ROOT {
                return Match::NONE;
            }
            state = self.link[state as usize];
            length = self.longest[state as usize];
        }
    }

    /// The symbols that follow the last `length` matched symbols somewhere in the
    /// text (None when fewer are matched). Every substring a state holds has the
    /// same followers, so this is one state's edges, found by following suffix
    /// links from the match.
    pub fn followers(&self, matched: Match, length: u32) -> Option<&[u32]> {
        if matched.length < length {
            return None;
        }
        let mut state = matched.state;
        while state != ROOT && self.longest[self.link[state as usize] as usize] >= length {
            state = self.link[state as usize];
        }
        Some(&self.edge_symbols[self.edge_range(state)])
    }

    fn target(&self, state: u32, symbol: u32) -> Option<u32> {
        let range = self.edge_range(state);
        let index = self.edge_symbols[range.clone()].binary_search(&symbol).ok()?;
        Some(self.edge_targets[range.start + index])
    }

    fn edge_range(&self, state: u32) -> std::ops::Range<usize> {
        let state = state as usize;
        self.edge_start[state] as usize..self.edge_start[state + 1] as usize
    }
}

/// The automaton while it grows: one edge list per state, sorted by symbol.
#[derive(Default)]
struct Building {
    longest: Vec<u32>,
    link: Vec<u32>,
    first_end: Vec<u32>,
    edges: Vec<Vec<(u32, u32)>>,
    /// The state of the whole text so far.
    last: u32,
}

impl Building {
    fn new_state(&mut self, longest: u32, link: u32, first_end: u32, edges: Vec<(u32, u32)>) -> u32 {
        self.longest.push(longest);
        self.link.push(link);
        self.first_end.push(first_end);
        self.edges.push(edges);
        (self.longest.len() - 1) as u32
    }

    fn target(&self, state: u32, symbol: u32) -> Option<u32> {
        let edges = &self.edges[state as usize];
        edges.binary_search_by_key(&symbol, |&(s, _)| s).ok().map(|index| edges[index].1)
    }

    fn set_edge(&mut self, state: u32, symbol: u32, target: u32) {
        let edges = &mut self.edges[state as usize];
        match edges.binary_search_by_key(&symbol, |&(s, _)| s) {
            Ok(index) => edges[index].1 = target,
            Err(index) => edges.insert(index, (symbol, target)),
        }
    }

    /// The standard online construction (one symbol at a time).
    fn append(&mut self, symbol: u32, position: u32) {
        if self.longest.is_empty() {
            self.new_state(0, NO_LINK, 0, Vec::new());
        }
        let grown = self.new_state(self.longest[self.last as usize] + 1, ROOT, position, Vec::new());
        let mut state = Some(self.last);
        while let Some(s) = state.filter(|&s| self.target(s, symbol).is_none()) {
            self.set_edge(s, symbol, grown);
            state = Some(self.link[s as usize]).filter(|&link| link != NO_LINK);
        }
        if let Some(s) = state {
            let next = self.target(s, symbol).expect("the loop stopped on an edge");
            if self.longest[s as usize] + 1 == self.longest[next as usize] {
                self.link[grown as usize] = next;
            } else {
                // `next` holds longer strings that end elsewhere too: split off the
                // ones of length longest(s) + 1 into a clone.
                let clone = self.new_state(
                    self.longest[s as usize] + 1,
                    self.link[next as usize],
                    self.first_end[next as usize],
                    self.edges[next as usize].clone(),
                );
                let mut redirect = Some(s);
                while let Some(r) = redirect.filter(|&r| self.target(r, symbol) == Some(next)) {
                    self.set_edge(r, symbol, clone);
                    redirect = Some(self.link[r as usize]).filter(|&link| link != NO_LINK);
                }
                self.link[next as usize] = clone;
                self.link[grown as usize] = clone;
            }
        }
        self.last = grown;
    }

    fn freeze(mut self) -> SuffixAutomaton {
        if self.longest.is_empty() {
            self.new_state(0, NO_LINK, 0, Vec::new());
        }
        let mut edge_start = Vec::with_capacity(self.edges.len() + 1);
        let (mut edge_symbols, mut edge_targets) = (Vec::new(), Vec::new());
        for edges in &self.edges {
            edge_start.push(edge_symbols.len() as u32);
            edge_symbols.extend(edges.iter().map(|&(symbol, _)| symbol));
            edge_targets.extend(edges.iter().map(|&(_, target)| target));
        }
        edge_start.push(edge_symbols.len() as u32);
        SuffixAutomaton {
            longest: self.longest,
            link: self.link,
            first_end: self.first_end,
            edge_start,
            edge_symbols,
            edge_targets,
        }
    }
}

/// An automaton as read, before the checks that keep every walk in bounds and
/// finite (a corrupt or hostile file must not panic or hang a lookup).
#[derive(Deserialize)]
struct Unchecked {
    longest: Vec<u32>,
    link: Vec<u32>,
    first_end: Vec<u32>,
    edge_start: Vec<u32>,
    edge_symbols: Vec<u32>,
    edge_targets: Vec<u32>,
}

impl TryFrom<Unchecked> for SuffixAutomaton {
    type Error = String;

    fn try_from(raw: Unchecked) -> Result<SuffixAutomaton, String> {
        let states = raw.longest.len();
        let edges = raw.edge_symbols.len();
        let shaped = states > 0
            && raw.link.len() == states
            && raw.first_end.len() == states
            && raw.edge_start.len() == states + 1
            && raw.edge_targets.len() == edges
            && raw.edge_start[0] == 0
            && raw.edge_start[states] as usize == edges
            && raw.edge_start.windows(2).all(|pair| pair[0] <= pair[1]);
        if !shaped {
            return Err("suffix automaton: array lengths disagree".into());
        }
        // Suffix links lead to strictly shorter states (walks end at the root);
        // edges lead to strictly longer ones (a match never outgrows its state);
        // every state's substrings fit before their first end.
        let links_shorten = raw.link[0] == NO_LINK
            && (1..states).all(|s| {
                let link = raw.link[s] as usize;
                link < states && raw.longest[link] < raw.longest[s]
            });
        let ends_fit = (0..states).all(|s| raw.first_end[s] as u64 + 1 >= u64::from(raw.longest[s]));
        let edges_lengthen = (0..states).all(|s| {
            let range = raw.edge_start[s] as usize..raw.edge_start[s + 1] as usize;
            raw.edge_symbols[range.clone()].windows(2).all(|pair| pair[0] < pair[1])
                && raw.edge_targets[range].iter().all(|&target| {
                    (target as usize) < states && raw.longest[target as usize] > raw.longest[s]
                })
        });
        if !(links_shorten && ends_fit && edges_lengthen) {
            return Err("suffix automaton: inconsistent states".into());
        }
        Ok(SuffixAutomaton {
            longest: raw.longest,
            link: raw.link,
            first_end: raw.first_end,
            edge_start: raw.edge_start,
            edge_symbols: raw.edge_symbols,
            edge_targets: raw.edge_targets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every substring of the text, and its longest match found by brute force.
    fn longest_match_ending_at(text: &[u32], query: &[u32]) -> usize {
        (0..=query.len())
            .rev()
            .find(|&length| {
                let tail = &query[query.len() - length..];
                length == 0 || text.windows(length).any(|window| window == tail)
            })
            .unwrap()
    }

    #[test]
    fn matches_agree_with_a_brute_force_search() {
        let text = [1, 2, 1, 2, 3, 1, 2, 1, 9, 2, 3, 3, 1];
        let automaton = SuffixAutomaton::build(&text);
        assert!(automaton.states() < 2 * text.len());
        let query = [2, 1, 2, 3, 3, 1, 2, 1, 2, 1, 7, 1, 2, 3, 1];
        let mut matched = Match::NONE;
        for end in 1..=query.len() {
            matched = automaton.extend(matched, query[end - 1]);
            assert_eq!(matched.length as usize, longest_match_ending_at(&text, &query[..end]), "at {end}");
            let first = automaton.first_end(matched) as usize + 1 - matched.length as usize;
            assert_eq!(
                text[first..first + matched.length as usize],
                query[end - matched.length as usize..end]
            );
        }
    }

    #[test]
    fn a_round_trip_keeps_it_and_a_corrupt_one_is_refused() {
        let automaton = SuffixAutomaton::build(&[5, 6, 5, 6, 7]);
        let json = serde_json::to_value(&automaton).unwrap();
        assert_eq!(serde_json::from_value::<SuffixAutomaton>(json.clone()).unwrap(), automaton);
        let mut looped = json.clone();
        looped["link"][1] = serde_json::json!(1);
        assert!(serde_json::from_value::<SuffixAutomaton>(looped).is_err());
        let mut outside = json;
        outside["edge_targets"][0] = serde_json::json!(1000);
        assert!(serde_json::from_value::<SuffixAutomaton>(outside).is_err());
    }
}
