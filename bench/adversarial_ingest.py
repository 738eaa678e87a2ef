#!/usr/bin/env python3
"""What hostile uploads cost a running fugue: time per file and the server's peak
RSS growth, one file at a time and then eight at once.

  adversarial_ingest.py [--fugue target/release/fugue] [--only NAME]

It starts `fugue serve` on a free loopback port with a throwaway data directory,
makes every file itself (nothing is read from disk), uploads each as a dataset,
and prints a table. Peak RSS is the server's VmHWM, reset before each upload by
writing 5 to /proc/PID/clear_refs (Linux), so each row is that upload's own peak
above the RSS it started from. Goals (issue 13): at most 200 ms and 64 MB per file
one at a time, at most 512 MB for eight at once.

Standard library only, so it runs with any python3.
"""
import argparse
import concurrent.futures
import io
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile

GOAL_MS, GOAL_MB, GOAL_MB_EIGHT = 200, 64, 512


# ---- MIDI bytes --------------------------------------------------------------

def vlq(value):
    """A MIDI variable-length quantity (at most 0x0FFFFFFF)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


MAX_DELTA = 0x0FFFFFFF
END_OF_TRACK = b"\x00\xff\x2f\x00"


def event(delta, data):
    return vlq(delta) + bytes(data)


def wait(ticks):
    """Events that move time on by `ticks`, however many: empty text events."""
    out = bytearray()
    while ticks > MAX_DELTA:
        out += event(MAX_DELTA, [0xFF, 0x01, 0x00])
        ticks -= MAX_DELTA
    out += event(ticks, [0xFF, 0x01, 0x00])
    return bytes(out)


def track(body):
    body = bytes(body) + END_OF_TRACK
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(tracks, division=96, fmt=1):
    header = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks), division)
    return header + b"".join(track(t) for t in tracks)


def tempo(delta, micros):
    return event(delta, [0xFF, 0x51, 0x03, (micros >> 16) & 0xFF, (micros >> 8) & 0xFF, micros & 0xFF])


def note(delta, length, pitch=60, channel=0):
    return event(delta, [0x90 | channel, pitch, 90]) + wait(length) + event(0, [0x80 | channel, pitch, 0])


# ---- the hostile files ---------------------------------------------------------

def hostile_files():
    """(name, bytes, file name): every file is small and, but for its timing, well formed."""
    files = []

    def add(name, data, file_name=None):
        files.append((name, data, file_name or f"{name}.mid"))

    # Ten one-beat notes, each separated by the largest delta a MIDI file can hold.
    add("enormous deltas", smf([b"".join(note(MAX_DELTA, 96, 60 + i) for i in range(10))]))
    # One note held for about 30 days at 120 bpm (5.2 million beats).
    add("a note lasting days", smf([note(0, 96 * 5_200_000)]))
    # Notes that never end: the end-of-track marker comes days later.
    add("hanging notes, late track end",
        smf([event(0, [0x90, 60, 90]) + event(0, [0x90, 64, 90]) + wait(96 * 5_000_000)]))
    # Tempo 0 (invalid) and the slowest tempo (16.7 s per beat) over 2,000 beats.
    add("tempo 0", smf([tempo(0, 0) + b"".join(note(0, 96, 60) for _ in range(2000))]))
    add("tempo 0xFFFFFF", smf([tempo(0, 0xFFFFFF) + b"".join(note(0, 96, 60) for _ in range(2000))]))
    # 600,000 tempo changes one tick apart, then a note.
    add("590k tempo changes", smf([b"".join(tempo(1, 400_000 + i % 200_000) for i in range(590_000))
                                   + note(0, 96)]))
    # 300,000 meter changes, alternating 3/4 and 5/8, one tick apart at 1 tick per beat.
    meters = b"".join(event(1, [0xFF, 0x58, 0x04, 3 if i % 2 else 5, 2 if i % 2 else 3, 24, 8])
                      for i in range(300_000))
    add("300k meter changes", smf([meters + note(0, 1)], division=1))
    # 20,000 tracks of one note each.
    add("20k tracks", smf([note(i % 96, 96, 36 + i % 60) for i in range(20_000)]))
    # 102,400 notes at one instant (50 tracks x 16 channels x 128 pitches), one beat long.
    chord = b"".join(event(0, [0x90 | ch, p, 90]) for ch in range(16) for p in range(128))
    release = wait(96) + b"".join(event(0, [0x80 | ch, p, 0]) for ch in range(16) for p in range(128))
    add("100k notes at one instant", smf([chord + release] * 50))
    # The same, held for 10,000 beats: short in notes, enormous in sounding time.
    held = wait(96 * 10_000) + b"".join(event(0, [0x80 | ch, p, 0]) for ch in range(16) for p in range(128))
    add("100k notes held 10k beats", smf([chord + held] * 50))
    # The coarsest and the finest resolution, with long gaps between notes.
    add("1 tick per beat, far apart", smf([b"".join(note(1_000_000, 1, 60) for _ in range(50))], division=1))
    add("32767 ticks per beat", smf([b"".join(note(0, 32767 * 4, 40 + i % 40) for i in range(2000))],
                                    division=0x7FFF))

    # The most the bounds let through: 200,000 notes over 40,000 beats in bars of
    # 1/16, sounding for 2,000,000 beats in all.
    add("largest file allowed", largest_allowed())

    # Zips: nested, lying about sizes, a bomb, and one full of the files above.
    inner = smf([note(0, 96)])
    nested = inner
    for depth in range(20):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"level{depth}.{'mid' if depth == 0 else 'zip'}", nested)
        nested = buffer.getvalue()
    add("zip nested 20 deep", nested, "nested.zip")
    add("zip bomb (1 GB of zeros)", zip_of([("zeros.mid", b"MThd" + bytes(1 << 30))]), "bomb.zip")
    add("zip lying about sizes", lying_zip(), "lying.zip")
    add("zip of 10k entries", zip_of([(f"f{i}.mid", inner) for i in range(10_001)]), "entries.zip")
    worst = [data for name, data, _ in files if name in ("enormous deltas", "100k notes held 10k beats")]
    add("zip of hostile MIDI", zip_of([(f"h{i}.mid", worst[i % len(worst)]) for i in range(8)]), "hostile.zip")
    return files


def largest_allowed():
    timeline = []
    for i in range(200_000):
        start, pitch = i * 96 // 5, 21 + i % 88
        timeline.append((start, 1, [0x90, pitch, 90]))
        timeline.append((min(start + 960, 40_000 * 96), 0, [0x80, pitch, 0]))
    timeline.sort()
    body, now = bytearray(event(0, [0xFF, 0x58, 0x04, 1, 4, 24, 8])), 0
    for tick, _, data in timeline:
        body += event(tick - now, data)
        now = tick
    return smf([bytes(body)])


def zip_of(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def lying_zip():
    """One entry whose headers claim 100 bytes uncompressed; it inflates to 64 MB."""
    data = bytearray(zip_of([("liar.mid", b"MThd" + bytes(64 << 20))]))
    claimed = struct.pack("<I", 100)
    local = data.find(b"PK\x03\x04")
    data[local + 22:local + 26] = claimed
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = claimed
    return bytes(data)


# ---- the server ------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kib(pid, field):
    """A /proc/PID/status figure in KiB; None once the server is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except (FileNotFoundError, ProcessLookupError):
        pass


def growth(pid, before):
    """Peak RSS growth in MB since `before` (KiB), or why there is none."""
    peak = kib(pid, "VmHWM")
    return "server died" if peak is None or before is None else f"{(peak - before) / 1024:.1f}"


def upload(base, files):
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nadversarial\r\n'.encode())
    for file_name, data in files:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{file_name}"\r\n'
                   f'Content-Type: application/octet-stream\r\n\r\n'.encode())
        body.write(data)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(f"{base}/v1/datasets", data=body.getvalue(), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        status, text = 0, f"no answer: {error}".encode()
    return status, (time.perf_counter() - started) * 1000, verdict(status, text)


def verdict(status, text):
    try:
        answer = json.loads(text)
    except ValueError:
        return text[:80].decode(errors="replace")
    if status == 201:
        report = answer.get("report", {})
        rejected = report.get("rejected", [])
        accepted = len(report.get("accepted", []))
        return f"accepted {accepted}" + (f", rejected: {rejected[0]['reason']}" if rejected else "")
    error = answer.get("error", {})
    rejected = ((error.get("details") or {}).get("report") or {}).get("rejected") or []
    return rejected[0]["reason"] if rejected else error.get("message", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fugue", default="target/release/fugue")
    parser.add_argument("--only", help="run only the files whose name contains this")
    parser.add_argument("--one-at-a-time", action="store_true", help="skip the eight-at-once runs")
    parser.add_argument("--memory-cap-gb", type=float,
                        help="cap the server's address space (RLIMIT_AS), so that a server without the "
                             "bounds fails alone instead of exhausting the machine")
    args = parser.parse_args()

    files = [f for f in hostile_files() if not args.only or args.only in f[0]]
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ, FUGUE_ADDR=f"127.0.0.1:{port}", FUGUE_DATA_DIR=data_dir,
                   FUGUE_LOG="warn", FUGUE_TRAIN_WORKERS="0")
        def cap():
            if args.memory_cap_gb:
                limit = int(args.memory_cap_gb * 2**30)
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        server = subprocess.Popen([args.fugue, "serve"], env=env, stdout=subprocess.DEVNULL, preexec_fn=cap)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            run(base, server.pid, files, not args.one_at_a_time)
        finally:
            server.terminate()
            server.wait(timeout=30)


def run(base, pid, files, at_once):
    print(f"{'file':<32} {'bytes':>10} {'status':>6} {'ms':>8} {'peak RSS +MB':>12}  verdict")
    worst_ms = worst_mb = 0.0
    costs = []
    for name, data, file_name in files:
        reset_peak(pid)
        before = kib(pid, "VmRSS")
        status, ms, said = upload(base, [(file_name, data)])
        grown = growth(pid, before)
        worst_ms = max(worst_ms, ms)
        worst_mb = max(worst_mb, float(grown)) if grown != "server died" else worst_mb
        costs.append((ms, (name, data, file_name)))
        print(f"{name:<32} {len(data):>10} {status:>6} {ms:>8.0f} {grown:>12}  {said[:90]}", flush=True)
    print(f"one at a time: worst {worst_ms:.0f} ms (goal {GOAL_MS}), worst peak RSS +{worst_mb:.1f} MB "
          f"(goal {GOAL_MB})")

    if not at_once:
        return
    slowest = [f for _, f in sorted(costs, key=lambda c: -c[0])]
    for label, batch in (("8 at once, the 8 slowest files", slowest[:8]),
                         ("8 at once, the slowest file 8 times", [slowest[0]] * 8)):
        reset_peak(pid)
        before = kib(pid, "VmRSS")
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda f: upload(base, [(f[2], f[1])]), batch))
        ms = (time.perf_counter() - started) * 1000
        grown = growth(pid, before)
        statuses = sorted({r[0] for r in results})
        print(f"{label}: {ms:.0f} ms in all, slowest {max(r[1] for r in results):.0f} ms, "
              f"peak RSS +{grown} MB (goal {GOAL_MB_EIGHT}), statuses {statuses} (0: no answer)")

if __name__ == "__main__":
    sys.exit(main())
