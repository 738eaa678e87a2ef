//! The RIFF/WAVE header of 16-bit PCM: 44 bytes, written before the samples, so a
//! WAV streams once its length is known.

use super::render::{CHANNELS, SAMPLE_RATE};

pub const WAV_HEADER_BYTES: usize = 44;
const BYTES_PER_SAMPLE: u32 = 2;

/// Bytes of a WAV file of `frames` stereo frames, header included; `None` past the
/// format's 4 GiB (about 6 h 45 min at 44.1 kHz stereo, longer than any MIDI
/// file the reader accepts).
pub fn wav_len(frames: u64) -> Option<u64> {
    let data = frames.checked_mul(u64::from(CHANNELS as u32 * BYTES_PER_SAMPLE))?;
    let total = data + WAV_HEADER_BYTES as u64;
    (total - 8 <= u64::from(u32::MAX)).then_some(total)
}

/// The header of a WAV file of `frames` frames (44.1 kHz, stereo, 16-bit PCM).
pub fn wav_header(frames: u64) -> Option<[u8; WAV_HEADER_BYTES]> {
    let total = wav_len(frames)?;
    let data = u32::try_from(total - WAV_HEADER_BYTES as u64).ok()?;
    let channels = CHANNELS as u16;
    let block_align = u32::from(channels) * BYTES_PER_SAMPLE;
    let mut header = [0u8; WAV_HEADER_BYTES];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        header[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&(data + 36).to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&16u32.to_le_bytes());
    put(&1u16.to_le_bytes()); // PCM
    put(&channels.to_le_bytes());
    put(&SAMPLE_RATE.to_le_bytes());
    put(&(SAMPLE_RATE * block_align).to_le_bytes());
    put(&(block_align as u16).to_le_bytes());
    put(&(BYTES_PER_SAMPLE as u16 * 8).to_le_bytes());
    put(b"data");
    put(&data.to_le_bytes());
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_states_the_length_and_format() {
        let header = wav_header(44_100).unwrap();
        assert_eq!(&header[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(header[4..8].try_into().unwrap()), 36 + 44_100 * 4);
        assert_eq!(u16::from_le_bytes(header[22..24].try_into().unwrap()), 2, "stereo");
        assert_eq!(u32::from_le_bytes(header[24..28].try_into().unwrap()), 44_100);
        assert_eq!(u32::from_le_bytes(header[40..44].try_into().unwrap()), 44_100 * 4);
        assert_eq!(wav_len(44_100), Some(44 + 44_100 * 4));
        assert_eq!(wav_len(u64::from(u32::MAX) / 4), None, "past 4 GiB");
    }
}
