"""Structural minimiser for standard MIDI files.

libFuzzer's byte-level `cargo fuzz tmin` rarely shrinks a MIDI crash: deleting bytes
breaks the chunk lengths and the reader refuses the file. This drops whole tracks,
then runs of events, then shortens delta times, re-encoding the chunks each time, and
keeps a candidate while the fuzz target still panics with PATTERN in its stderr.

Usage: python3 tools/smfmin.py FUZZ_BINARY CRASH_INPUT OUTPUT 'panic message part'
(FUZZ_BINARY: $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/midi_read)
"""
import struct, subprocess, sys, os, tempfile

BIN, IN, OUT, PATTERN = sys.argv[1:5]

def varlen(b, i):
    v = 0
    while True:
        c = b[i]; i += 1
        v = (v << 7) | (c & 0x7f)
        if c < 0x80: return v, i

def enc_varlen(v):
    out = [v & 0x7f]; v >>= 7
    while v: out.append(0x80 | (v & 0x7f)); v >>= 7
    return bytes(reversed(out))

def parse(data):
    hdr = data[:14]
    i = 14; tracks = []
    while i + 8 <= len(data):
        n = struct.unpack('>I', data[i+4:i+8])[0]
        body = data[i+8:i+8+n]; i += 8 + n
        ev = []; j = 0; status = None
        while j < len(body):
            d, j = varlen(body, j)
            c = body[j]
            if c == 0xff:
                ln, k = varlen(body, j + 2); e = body[j:k+ln]; j = k + ln
            elif c in (0xf0, 0xf7):
                ln, k = varlen(body, j + 1); e = body[j:k+ln]; j = k + ln
            else:
                if c & 0x80: status = c; j += 1
                n2 = 1 if status >> 4 in (0xc, 0xd) else 2
                e = bytes([status]) + body[j:j+n2]; j += n2
            ev.append([d, e])
        tracks.append(ev)
    return hdr, tracks

def build(hdr, tracks):
    out = bytearray(hdr[:10] + struct.pack('>H', len(tracks)) + hdr[12:14])
    for ev in tracks:
        body = b''.join(enc_varlen(d) + e for d, e in ev)
        out += b'MTrk' + struct.pack('>I', len(body)) + body
    return bytes(out)

def crashes(data):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    r = subprocess.run([BIN, f.name], capture_output=True, text=True, errors='replace')
    os.unlink(f.name)
    return r.returncode != 0 and PATTERN in r.stderr

hdr, tracks = parse(open(IN, 'rb').read())
assert crashes(build(hdr, tracks)), 'normalised input does not crash'
changed = True
while changed:
    changed = False
    for t in range(len(tracks) - 1, -1, -1):          # drop whole tracks
        cand = tracks[:t] + tracks[t+1:]
        if cand and crashes(build(hdr, cand)): tracks = cand; changed = True
    for t in range(len(tracks)):                        # drop events, in halving chunks
        size = max(1, len(tracks[t]) // 2)
        while size >= 1:
            k = 0
            while k < len(tracks[t]):
                cand_t = tracks[t][:k] + tracks[t][k+size:]
                cand = tracks[:t] + [cand_t] + tracks[t+1:]
                if crashes(build(hdr, cand)): tracks = cand; changed = True
                else: k += size
            size //= 2
    for t in range(len(tracks)):                        # shrink delta times
        for k, (d, e) in enumerate(tracks[t]):
            for nd in (0, 1, d // 2):
                if nd < d:
                    cand = [list(map(list, tr)) for tr in tracks]; cand[t][k][0] = nd
                    if crashes(build(hdr, cand)): tracks = cand; changed = True; break
data = build(hdr, tracks)
open(OUT, 'wb').write(data)
print(len(data), 'bytes;', [len(t) for t in tracks], 'events per track')
for t in tracks: print(' ', [(d, e.hex()) for d, e in t])
