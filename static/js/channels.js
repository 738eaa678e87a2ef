// The MIDI channel of a note's part, as the server's MIDI files and audio assign
// them: parts in order, skipping channel 10 (index 9, General MIDI's drums).

const DRUMS = 9;

export function channelOf(note) {
  const index = note.part ? note.part.index : 0;
  return index < DRUMS ? index : Math.min(15, index + 1);
}
