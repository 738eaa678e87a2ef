//! The `events` tokens and their text form (`Bar`, `Pos_24`, `Part_1`, `Name_Alto`, ...),
//! which is what vocabularies store.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Token {
    Bar,
    TimeSig(u8, u8),
    Pos(u16),
    Tempo(u16),
    Prog(u8),
    /// In the header, declares part `i`; in a bar, the notes that follow at this
    /// position belong to part `i`.
    Part(u8),
    /// In the header: the part being declared is a drum kit (channel 10).
    Drums,
    /// In the header: the name of the part being declared.
    Name(PartName),
    Pitch(u8),
    Vel(u8),
    Dur(u16),
}

/// A part's name as a token holds it: the first line of the track name, trimmed,
/// at most [`PartName::MAX_BYTES`] bytes. Stored inline so that [`Token`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartName {
    len: u8,
    bytes: [u8; PartName::MAX_BYTES],
}

impl PartName {
    pub const MAX_BYTES: usize = 23;

    /// The name a token keeps of `text`; `None` when nothing is left.
    pub fn new(text: &str) -> Option<PartName> {
        let line = text.split(['\r', '\n']).next().unwrap_or("").trim();
        let mut end = line.len().min(Self::MAX_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let kept = line[..end].trim_end();
        if kept.is_empty() {
            return None;
        }
        let mut bytes = [0; Self::MAX_BYTES];
        bytes[..kept.len()].copy_from_slice(kept.as_bytes());
        Some(PartName { len: kept.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)])
            .expect("built from a str at a char boundary")
    }
}

/// As its text, so that a note's part name reads as a plain string in JSON.
impl serde::Serialize for PartName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for PartName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PartName, D::Error> {
        let text = String::deserialize(deserializer)?;
        PartName::new(&text).ok_or_else(|| serde::de::Error::custom("a part name must not be empty"))
    }
}

impl fmt::Debug for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Bar => f.write_str("Bar"),
            Token::TimeSig(n, d) => write!(f, "TimeSig_{n}/{d}"),
            Token::Pos(p) => write!(f, "Pos_{p}"),
            Token::Tempo(b) => write!(f, "Tempo_{b}"),
            Token::Prog(p) => write!(f, "Prog_{p}"),
            Token::Part(i) => write!(f, "Part_{i}"),
            Token::Drums => f.write_str("Drums"),
            Token::Name(name) => write!(f, "Name_{}", name.as_str()),
            Token::Pitch(p) => write!(f, "Pitch_{p}"),
            Token::Vel(v) => write!(f, "Vel_{v}"),
            Token::Dur(d) => write!(f, "Dur_{d}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an events token: `{0}`")]
pub struct UnknownToken(pub String);

impl FromStr for Token {
    type Err = UnknownToken;

    fn from_str(text: &str) -> Result<Token, UnknownToken> {
        let unknown = || UnknownToken(text.to_owned());
        match text {
            "Bar" => return Ok(Token::Bar),
            "Drums" => return Ok(Token::Drums),
            _ => {}
        }
        let (kind, value) = text.split_once('_').ok_or_else(unknown)?;
        let number = |value: &str| value.parse::<u16>().map_err(|_| unknown());
        let byte = |value: &str| value.parse::<u8>().map_err(|_| unknown());
        Ok(match kind {
            "TimeSig" => {
                let (n, d) = value.split_once('/').ok_or_else(unknown)?;
                Token::TimeSig(byte(n)?, byte(d)?)
            }
            "Pos" => Token::Pos(number(value)?),
            "Tempo" => Token::Tempo(number(value)?),
            "Prog" => Token::Prog(byte(value)?),
            "Part" => Token::Part(byte(value)?),
            // Only a name that reads back as itself is a name token.
            "Name" => {
                Token::Name(PartName::new(value).filter(|name| name.as_str() == value).ok_or_else(unknown)?)
            }
            "Pitch" => Token::Pitch(byte(value)?),
            "Vel" => Token::Vel(byte(value)?),
            "Dur" => Token::Dur(number(value)?),
            _ => return Err(unknown()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_first_line_within_the_bound() {
        assert_eq!(PartName::new("  Soprano ").unwrap().as_str(), "Soprano");
        assert_eq!(PartName::new("Soprano\rOboe 1,2\rViolin1").unwrap().as_str(), "Soprano");
        assert_eq!(PartName::new("Horn_1 in F").unwrap().as_str(), "Horn_1 in F");
        assert_eq!(
            PartName::new("Contrabass and Bassoon, Cello").unwrap().as_str(),
            "Contrabass and Bassoon,"
        );
        // 22 ASCII bytes and a two-byte é: the é does not fit and is left out whole.
        assert_eq!(PartName::new("aaaaaaaaaaaaaaaaaaaaaaé").unwrap().as_str(), "aaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(PartName::new(" \n Alto"), None);
    }

    #[test]
    fn every_kind_reads_back_from_its_text() {
        let tokens = [
            Token::Bar,
            Token::TimeSig(6, 8),
            Token::Pos(12),
            Token::Tempo(96),
            Token::Prog(52),
            Token::Part(3),
            Token::Drums,
            Token::Name(PartName::new("Horn_1 in F").unwrap()),
            Token::Pitch(60),
            Token::Vel(90),
            Token::Dur(24),
        ];
        for token in tokens {
            assert_eq!(token.to_string().parse::<Token>(), Ok(token));
        }
        for text in ["Chord_5", "Name_", "Name_ Alto", "Part_x", "Drum"] {
            assert_eq!(text.parse::<Token>(), Err(UnknownToken(text.into())), "{text}");
        }
    }
}
