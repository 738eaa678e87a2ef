// End-to-end tests of fugue's page in headless Chromium against a real `fugue
// serve` (SQLite in a temp dir, the bundled models, one training worker).
// Screenshots of every step go to test-artifacts/browser/.
//
// Run by `make test` (scripts/browser-test.sh); alone: `node tests/browser/page.test.mjs`
// after `cargo build`.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const shots = join(root, "test-artifacts", "browser");
mkdirSync(shots, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "fugue-browser-"));

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startServer() {
  const port = await freePort();
  const server = spawn(join(root, "target", "debug", "fugue"), ["serve"], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      FUGUE_ADDR: `127.0.0.1:${port}`,
      FUGUE_DATA_DIR: join(work, "data"),
      FUGUE_MODELS_DIR: join(root, "models"),
      FUGUE_STATIC_DIR: join(root, "static"),
      FUGUE_TRAIN_WORKERS: "1",
      FUGUE_LOG: "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200; attempt += 1) {
    try {
      if ((await fetch(`${base}/health`)).ok) return { server, base };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  server.kill();
  throw new Error("fugue serve did not start");
}

// Waits for `check()` (a test-side condition), or fails naming `what`.
async function until(what, check, timeout = 30_000) {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeout) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const steps = [];
async function step(name, run) {
  const started = Date.now();
  await run();
  steps.push(`${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`browser: ok   ${name}`);
}

// What the piano roll drew (its `drawn`), each item checked against the canvas's
// pixels: a name on a key has dark ink in its box; a bar line differs from the
// pixels just left of it in the ruler, and a beat line in the free row at the
// top, which no note reaches.
function rollDrawing(page) {
  return page.evaluate(() => {
    const { drawn, range, timeline } = globalThis.fugueRoll;
    const canvas = document.querySelector("#roll");
    const g = canvas.getContext("2d");
    const ratio = canvas.width / canvas.clientWidth;
    const pixel = (x, y) => [...g.getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data].join();
    const ink = (box) => {
      const data = g.getImageData(box.x * ratio, box.y * ratio, box.width * ratio, box.height * ratio).data;
      let dark = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 200 && data[i] + data[i + 1] + data[i + 2] < 300) dark += 1;
      return dark;
    };
    const beatRow = drawn.freeRow.y + drawn.freeRow.height / 2;
    return {
      range,
      meters: timeline.meters,
      keys: drawn.keys.map((key) => ({ name: key.name, pitch: key.pitch, inked: ink(key) > 3 })),
      lines: drawn.lines.map((line) => {
        const y = line.bar ? 2 : beatRow;
        return { ...line, seen: pixel(line.x, y) !== pixel(line.x - 2, y) };
      }),
      playhead: drawn.playhead,
    };
  });
}

// Every message of the page's generation streams, both ways, with when it went,
// from now until `unwatch()`.
function watchStreams(page) {
  const frames = [];
  const watch = (ws) => {
    if (!ws.url().endsWith("/v1/generate/stream")) return;
    const keep = (way) => (frame) => frames.push({ way, at: Date.now(), message: JSON.parse(frame.payload) });
    ws.on("framesent", keep("sent"));
    ws.on("framereceived", keep("received"));
  };
  page.on("websocket", watch);
  return {
    frames,
    // The notes received after `at` (a Date.now()).
    notesAfter: (at) => frames.filter((f) => f.way === "received" && f.at > at && f.message.type === "notes")
      .flatMap((f) => f.message.notes),
    controls: () => frames.filter((f) => f.way === "sent" && f.message.type === "control").map((f) => f.message),
    unwatch: () => page.off("websocket", watch),
  };
}

// How wide the page is, and its window beside any scrollbar.
function pageWidths(page) {
  return page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
  }));
}

const { server, base } = await startServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // Scrollbars as on a desktop, taking their width from the page, so that a page
  // wider than the room beside its scrollbar is caught.
  ignoreDefaultArgs: ["--hide-scrollbars"],
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("request", (request) => {
    const url = new URL(request.url());
    assert.equal(url.host, new URL(base).host, `the page fetched ${request.url()}: it must work offline`);
  });
  await page.goto(`${base}/`);

  await step("the page opens ready, with the bundled model preselected and every control labelled", async () => {
    await page.waitForFunction(() => document.querySelector("#model option[value=default]") !== null);
    assert.equal(await page.inputValue("#model"), "default");
    await page.waitForSelector("#status.ok");
    const unlabelled = await page.$$eval("input, select, textarea", (controls) =>
      controls.filter((control) => !control.closest("label") && !control.labels?.length).map((c) => c.id));
    assert.deepEqual(unlabelled, []);
    await page.screenshot({ path: join(shots, "01-first-visit.png"), fullPage: true });
  });

  await step("generate: notes fill the roll while they stream", async () => {
    await page.fill("#length", "24");
    await page.selectOption("#length-unit", "notes");
    await page.fill("#seed", "7");
    await page.fill("#max-copied", "5");
    await page.check("#realtime");
    // Zoomed in, so that the piece outgrows the roll as it plays.
    for (let i = 0; i < 3; i += 1) await page.click("#zoom-in");
    await page.click("#generate");
    // Real-time pacing: notes arrive as they would sound, so the roll fills while
    // the stream is still open (the Generate button stays disabled until the end),
    // and the roll scrolls to keep the playhead in sight.
    await page.waitForFunction(() => Number(document.querySelector("#roll").dataset.notes) > 0 &&
      document.querySelector("#generate").disabled, null, { timeout: 30_000 });
    await page.screenshot({ path: join(shots, "02-compose-streaming.png") });
    await page.waitForFunction(() => document.querySelector("#roll-scroll").scrollLeft > 0 &&
      globalThis.fugueRoll.drawn.playhead !== null && document.querySelector("#generate").disabled, null, { timeout: 30_000 });
    await page.waitForFunction(() => !document.querySelector("#download").disabled, null, { timeout: 60_000 });
    await page.click("#zoom-fit");
    const notes = Number(await page.getAttribute("#roll", "data-notes"));
    assert.ok(notes >= 24, `${notes} notes in the roll`);
    // The bundled default sings in four voices: a colour each, named in the legend.
    const legend = await page.$$eval("#roll-legend .part-name", (items) => items.map((item) => item.textContent));
    assert.deepEqual(legend, ["Soprano", "Alto", "Tenor", "Bass"]);
    assert.match(await page.textContent("#compose-status"), /notes, .* s of music, seed 7/);
    // Its originality, under the copy limit asked for.
    const copied = await page.textContent("#compose-originality");
    const run = copied.match(/^longest copied run: (\d) notes.*, from bwv.*\.mid bar \d+ \(limit 5\)$/);
    assert.ok(run && Number(run[1]) <= 5, copied);
    await page.screenshot({ path: join(shots, "03-compose-done.png") });
    await page.locator(".player").screenshot({ path: join(shots, "03-parts.png") });
  });

  await step("the roll names the keys and numbers the bars, in the piece's meter", async () => {
    await page.waitForFunction(() => globalThis.fugueRoll.drawn.lines.length > 0);
    const drawn = await rollDrawing(page);
    // Every C in the roll's range is named (C4 is middle C), in ink.
    const cs = [];
    for (let pitch = drawn.range.low; pitch <= drawn.range.high; pitch += 1) if (pitch % 12 === 0) cs.push(`C${pitch / 12 - 1}`);
    assert.ok(cs.length >= 2, JSON.stringify(drawn.range));
    assert.deepEqual(drawn.keys.filter((key) => key.name.startsWith("C") && key.name[1] !== "#").map((key) => key.name), cs);
    assert.deepEqual(drawn.keys.filter((key) => !key.inked), [], "every name drawn on its key");
    // Bars numbered from 1, a bar's length apart, each with its beat lines between.
    const [meter] = drawn.meters;
    const bar = (meter.numerator * 4) / meter.denominator;
    const bars = drawn.lines.filter((line) => line.bar);
    assert.ok(bars.length >= 2, `${bars.length} bar lines`);
    bars.forEach((line, i) => assert.deepEqual([line.bar, line.beat], [i + 1, i * bar]));
    assert.ok(bars.slice(1).every((line) => line.numbered), "every bar numbered");
    const beats = drawn.lines.filter((line) => !line.bar && line.beat < bars.at(-1).beat);
    assert.equal(beats.length, (bars.length - 1) * (meter.numerator - 1));
    assert.deepEqual(drawn.lines.filter((line) => line.x > 50 && !line.seen), [], "every line drawn");
    await page.locator(".player").screenshot({ path: join(shots, "03c-roll.png") });
  });

  await step("the roll zooms, with the buttons and Ctrl + wheel, and scrolls with the playhead", async () => {
    const scroller = page.locator("#roll-scroll");
    const scale = () => page.evaluate(() => globalThis.fugueRoll.scale());
    const fitted = await scale();
    assert.equal(await scroller.evaluate((e) => e.scrollWidth - e.clientWidth), 0, "the whole piece fits at first");
    const box = await scroller.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.keyboard.down("Control");
    await page.mouse.wheel(0, -200);
    await page.keyboard.up("Control");
    await page.waitForFunction((before) => globalThis.fugueRoll.scale() > before, fitted);
    for (let i = 0; i < 3; i += 1) await page.click("#zoom-in");
    assert.ok(await scroller.evaluate((e) => e.scrollWidth > 2 * e.clientWidth), "zoomed in, the piece scrolls");
    await page.click("#play");
    await page.waitForFunction(() => document.querySelector("#roll-scroll").scrollLeft > 0 &&
      globalThis.fugueRoll.drawn.playhead !== null, null, { timeout: 30_000 });
    await page.locator(".player").screenshot({ path: join(shots, "03d-roll-zoomed-playing.png") });
    await page.click("#stop");
    const zoomed = await scale();
    await page.click("#zoom-out");
    assert.ok(Math.abs((await scale()) * 1.5 - zoomed) < 1e-6, "zoomed out");
    await page.click("#zoom-fit");
    assert.equal(await scale(), fitted);
  });

  await step("the download is a MIDI file that fugue's reader accepts", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    assert.match(download.suggestedFilename(), /^fugue-.*\.mid$/);
    const path = join(work, "downloaded.mid");
    await download.saveAs(path);
    const bytes = readFileSync(path);
    assert.equal(bytes.subarray(0, 4).toString(), "MThd");
    // fugue's own reader: ingest it as a dataset.
    const form = new FormData();
    form.append("name", "downloaded");
    form.append("files", new Blob([bytes]), "downloaded.mid");
    const response = await fetch(`${base}/v1/datasets`, { method: "POST", body: form });
    assert.equal(response.status, 201);
    const dataset = await response.json();
    assert.equal(dataset.report.accepted.length, 1);
    assert.ok(dataset.report.totals.notes >= 24);
  });

  await step("the audio download is the server's WAV rendering of the piece", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-audio")]);
    assert.match(download.suggestedFilename(), /^fugue-.*\.wav$/);
    const path = join(work, "downloaded.wav");
    await download.saveAs(path);
    const bytes = readFileSync(path);
    assert.equal(bytes.subarray(0, 4).toString(), "RIFF");
    assert.equal(bytes.subarray(8, 12).toString(), "WAVE");
    assert.equal(bytes.readUInt32LE(24), 44_100);
    assert.ok(bytes.length > 44 + 44_100, `${bytes.length} bytes: more than a second of audio`);
  });

  await step("playback goes through the SoundFont synthesizer and is not silent", async () => {
    await page.click("#play");
    await page.waitForFunction(() => document.documentElement.dataset.synth === "soundfont", null, { timeout: 90_000 });
    // Tap the synthesizer's output until something sounds (or give up after 10 s).
    const loudest = await page.evaluate(async () => {
      const buffer = new Float32Array(globalThis.fugueSynth.analyser.fftSize);
      let loudest = 0;
      for (let i = 0; i < 100 && loudest < 0.01; i += 1) {
        globalThis.fugueSynth.analyser.getFloatTimeDomainData(buffer);
        loudest = Math.max(loudest, Math.sqrt(buffer.reduce((sum, x) => sum + x * x, 0) / buffer.length));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return loudest;
    });
    assert.ok(loudest >= 0.01, `the SoundFont synthesizer's output RMS peaked at ${loudest}`);
    await page.screenshot({ path: join(shots, "03b-soundfont-playing.png") });
    await page.click("#stop");
  });

  await step("MIDI out sends each part's notes on its own channel to the chosen output", async () => {
    // A fake MIDIAccess with one output that records what it is sent.
    const midiPage = await context.newPage();
    await midiPage.addInitScript(() => {
      globalThis.sentMidi = [];
      const output = { id: "fake-out", name: "Fake synth", send: (data) => globalThis.sentMidi.push([...data]), clear() {} };
      navigator.requestMIDIAccess = async () => ({ outputs: new Map([[output.id, output]]), inputs: new Map() });
    });
    await midiPage.goto(`${base}/`);
    await midiPage.waitForSelector("#history li button");
    await midiPage.waitForFunction(() => !document.querySelector("#midi-out").disabled);
    await midiPage.selectOption("#midi-out", "fake-out");
    const [piece] = await (await fetch(`${base}/v1/compositions?limit=1`)).json();
    await midiPage.click("#history li button");
    // The whole piece (a few seconds) is sent as it plays.
    await midiPage.waitForFunction((count) => globalThis.sentMidi.filter((m) => (m[0] & 0xf0) === 0x80).length >= count,
      piece.notes.length, { timeout: 60_000 });
    const sent = await midiPage.evaluate(() => globalThis.sentMidi);
    await midiPage.click("#stop");
    const messages = sent.map((message) => message.join());
    for (const note of piece.notes) {
      const channel = note.part.index;
      const on = [0x90 | channel, note.pitch, note.velocity].join();
      const off = [0x80 | channel, note.pitch, 0].join();
      const program = [0xc0 | channel, note.program].join();
      assert.ok(messages.includes(on), `note-on ${on} sent: ${JSON.stringify(sent.slice(0, 12))}`);
      assert.ok(messages.includes(off), `note-off ${off} sent`);
      assert.ok(messages.indexOf(program) < messages.indexOf(on), `program ${program} before the part's first note`);
    }
    assert.equal(sent.filter((m) => (m[0] & 0xf0) === 0x90).length, piece.notes.length, "one note-on per note");
    // Four parts, four channels; after Stop, all notes off on every channel.
    const channels = new Set(sent.filter((m) => (m[0] & 0xf0) === 0x90).map((m) => m[0] & 0x0f));
    assert.deepEqual([...channels].sort(), [...new Set(piece.notes.map((note) => note.part.index))].sort());
    const afterStop = await midiPage.evaluate(() => globalThis.sentMidi.filter((m) => m[0] >= 0xb0 && m[0] < 0xc0 && m[1] === 123));
    assert.equal(afterStop.length % 16, 0);
    assert.ok(afterStop.length >= 16);
    await midiPage.close();
  });

  await step("a past composition can be replayed and downloaded from the list", async () => {
    await page.waitForSelector("#history li button");
    assert.ok((await page.$$("#history li")).length >= 1);
  });

  await step("a piece in 3/4 is barred in threes (the meter its MIDI file states)", async () => {
    const response = await fetch(`${base}/v1/generate`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ length: { bars: 4 }, time_signature: [3, 4], seed: 2 }),
    });
    assert.equal(response.status, 201);
    await page.reload();
    await page.waitForSelector("#history li button");
    await page.click("#history li button");
    await page.waitForFunction(() => globalThis.fugueRoll.timeline.meters[0].numerator === 3);
    await page.click("#stop");
    const drawn = await rollDrawing(page);
    assert.deepEqual(drawn.lines.filter((line) => line.bar).map((line) => line.beat).slice(0, 4), [0, 3, 6, 9]);
    assert.deepEqual(drawn.lines.filter((line) => !line.seen), []);
    await page.locator(".player").screenshot({ path: join(shots, "03e-roll-three-four.png") });
  });

  await step("live controls steer an endless stream; a refused one is shown beside it as the music plays on; Stop keeps the piece", async () => {
    const { frames, notesAfter, controls, unwatch } = watchStreams(page);

    await page.check("#endless");
    assert.ok(await page.isChecked("#realtime") && await page.isDisabled("#realtime") && await page.isDisabled("#length"));
    await page.fill("#seed", "11");
    await page.click("#generate");
    await page.waitForFunction(() => Number(document.querySelector("#roll").dataset.notes) >= 8, null, { timeout: 30_000 });
    assert.ok(await page.isVisible("#stream-stop"));
    const [request] = frames.filter((f) => f.way === "sent").map((f) => f.message);
    assert.deepEqual([request.length, request.pacing], [{ endless: true }, "realtime"]);

    // D minor, a hotter temperature and 90 bpm, each sent as it is set.
    const steered = Date.now();
    await page.selectOption("#key", "D");
    await page.selectOption("#scale", "minor");
    await page.$eval("#temperature", (slider) => {
      slider.value = "1.2";
      slider.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await page.fill("#tempo", "90");
    await page.press("#tempo", "Tab");
    assert.deepEqual(controls(), [
      { type: "control", key: "D", scale: "major" }, { type: "control", key: "D", scale: "minor" },
      { type: "control", temperature: 1.2 }, { type: "control", tempo_bpm: 90 },
    ]);
    // Heard within the server's 1.5 s lookahead: every note that arrives 3 s on is
    // in D minor, at 90 bpm.
    const settled = steered + 3_000;
    await until("notes after the controls", () => notesAfter(settled).length >= 8);
    const dMinor = new Set([2, 4, 5, 7, 9, 10, 0]);
    const later = notesAfter(settled);
    assert.deepEqual(later.filter((note) => !dMinor.has(note.pitch % 12)), [], "every later note is in D minor");
    for (const note of later) {
      assert.ok(Math.abs(note.duration_seconds / note.duration_beats - 60 / 90) < 0.01, `90 bpm: ${JSON.stringify(note)}`);
    }

    // A tempo the server refuses: its message beside the tempo, and the music plays on.
    await page.fill("#tempo", "500");
    await page.press("#tempo", "Tab");
    await page.waitForFunction(() => document.querySelector("#error-tempo").textContent.length > 0, null, { timeout: 10_000 });
    const refused = frames.find((f) => f.way === "received" && f.message.type === "error");
    assert.equal(refused.message.error.details.field, "tempo_bpm");
    assert.match(await page.textContent("#error-tempo"), /300/);
    const [input, message] = await Promise.all(["#tempo", "#error-tempo"].map((id) => page.locator(id).boundingBox()));
    assert.ok(Math.abs(message.x - input.x) < 2 && message.y >= input.y + input.height &&
      message.y < input.y + input.height + 30, `the message is under the tempo: ${JSON.stringify([input, message])}`);
    await until("notes after the refusal", () => notesAfter(refused.at).length > 0);
    assert.ok(await page.isDisabled("#generate") && await page.isVisible("#stream-stop"), "still playing");
    await page.locator("#compose-form").screenshot({ path: join(shots, "09-live-controls.png") });
    await page.locator(".player").screenshot({ path: join(shots, "09a-live-roll.png") });

    // Stop: the piece ends at its next bar line and is stored, like any other.
    await page.click("#stream-stop");
    assert.equal(controls().length, 5);
    assert.deepEqual(frames.filter((f) => f.way === "sent").at(-1).message, { type: "stop" });
    await page.waitForFunction(() => /of music/.test(document.querySelector("#compose-status").textContent) &&
      !document.querySelector("#download").disabled, null, { timeout: 30_000 });
    const end = frames.find((f) => f.message.type === "end");
    const [stored] = await (await fetch(`${base}/v1/compositions?limit=1`)).json();
    assert.equal(stored.composition_id, end.message.composition.composition_id);
    assert.equal(Number(await page.getAttribute("#roll", "data-notes")), stored.notes.length);
    await page.waitForFunction((label) => document.querySelector("#history li span").textContent.includes(label),
      `${stored.stats.notes} notes · seed ${stored.seed}`);
    assert.ok(await page.isHidden("#stream-stop"));
    await page.locator(".player").screenshot({ path: join(shots, "09b-live-stopped.png") });
    unwatch();
    await page.uncheck("#endless");
    await page.fill("#tempo", "");
    await page.selectOption("#key", "");
  });

  await step("each part's row steers that part of a live stream; a refused setting shows beside its part as the music plays on", async () => {
    const { frames, notesAfter, controls, unwatch } = watchStreams(page);
    await page.check("#endless");
    await page.fill("#seed", "12");
    await page.click("#generate");
    // A row for every part the stream plays, from its `start`, with its range and voices.
    await page.waitForSelector("input[aria-label='Lowest pitch of the Bass']", { state: "visible", timeout: 30_000 });
    const start = frames.find((f) => f.message.type === "start").message;
    assert.deepEqual(start.parts.map((part) => part.name), ["Soprano", "Alto", "Tenor", "Bass"]);
    assert.deepEqual(await page.$$eval("#roll-legend .part-name", (items) => items.map((item) => item.textContent)),
      ["Soprano", "Alto", "Tenor", "Bass"]);

    // The alto on a viola, between D4 and A4: each change sent for the alto alone.
    const steered = Date.now();
    await page.selectOption("select[aria-label='Instrument of the Alto']", "41");
    await page.fill("input[aria-label='Lowest pitch of the Alto']", "62");
    await page.press("input[aria-label='Lowest pitch of the Alto']", "Tab");
    await page.fill("input[aria-label='Highest pitch of the Alto']", "69");
    await page.press("input[aria-label='Highest pitch of the Alto']", "Tab");
    assert.deepEqual(controls(), [
      { type: "control", parts: [{ name: "Alto", program: 41 }] },
      { type: "control", parts: [{ name: "Alto", pitch_range: [62, 127] }] },
      { type: "control", parts: [{ name: "Alto", pitch_range: [62, 69] }] },
    ]);
    // Heard within the server's 1.5 s lookahead: every alto note that arrives 3 s
    // on is a viola's, within the range; the other parts keep their instruments.
    const settled = steered + 3_000;
    const altos = () => notesAfter(settled).filter((note) => note.part.name === "Alto");
    await until("alto notes after the controls", () => altos().length >= 4);
    assert.deepEqual(altos().filter((note) => note.program !== 41 || note.pitch < 62 || note.pitch > 69), [],
      "every later alto note is a viola's between 62 and 69");
    const others = notesAfter(settled).filter((note) => note.part.name !== "Alto");
    assert.ok(others.length > 0 && others.every((note) => note.program === start.parts[note.part.index].program),
      JSON.stringify(others));

    // Polyphony 0 is refused: the server's message at the end of the alto's row.
    await page.fill("input[aria-label='Most notes at once of the Alto']", "0");
    await page.press("input[aria-label='Most notes at once of the Alto']", "Tab");
    assert.deepEqual(controls().at(-1), { type: "control", parts: [{ name: "Alto", max_polyphony: 0 }] });
    const alto = page.locator("#roll-legend li", { has: page.locator(".part-name", { hasText: /^Alto$/ }) });
    await alto.locator(".error").filter({ hasText: /./ }).waitFor({ timeout: 10_000 });
    const refused = frames.find((f) => f.way === "received" && f.message.type === "error");
    assert.equal(refused.message.error.details.field, "parts[0].max_polyphony");
    assert.match(await alto.locator(".error").textContent(), /1 to 16/);
    assert.equal(await page.textContent("#error-general"), "");
    await until("notes after the refusal", () => notesAfter(refused.at).length > 0);
    assert.ok(await page.isDisabled("#generate") && await page.isVisible("#stream-stop"), "still playing");
    await page.locator(".player").screenshot({ path: join(shots, "09c-live-parts.png") });
    // On a phone the rows wrap: the page does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    const { scrollWidth, clientWidth } = await pageWidths(page);
    assert.ok(scrollWidth <= clientWidth, `the page is ${scrollWidth - clientWidth}px wider than a phone`);
    await page.locator(".player").screenshot({ path: join(shots, "09d-live-parts-phone.png") });
    await page.setViewportSize({ width: 1280, height: 900 });

    // Once the stream is over, the rows keep only what applies to the next piece.
    await page.click("#stream-stop");
    await page.waitForFunction(() => !document.querySelector("#generate").disabled, null, { timeout: 30_000 });
    assert.ok(await page.isHidden("input[aria-label='Lowest pitch of the Alto']"));
    unwatch();
    await page.uncheck("#endless");
  });

  await step("a validation error is shown next to the control at fault", async () => {
    await page.uncheck("#realtime");
    await page.fill("#length", "5000");
    await page.click("#generate");
    await page.waitForFunction(() => document.querySelector("#error-length").textContent.length > 0);
    assert.match(await page.textContent("#error-length"), /2000/);
    await page.locator("#compose-form").screenshot({ path: join(shots, "04-validation-error.png") });
    await page.fill("#length", "96");
  });

  await step("harmonize a typed melody: it comes back note for note, outlined, and a picked instrument sticks", async () => {
    // A typo is refused beside the melody, before anything is sent.
    await page.fill("#melody-notes", "G4 H4");
    await page.click("#generate");
    assert.match(await page.textContent("#error-melody"), /H4/);

    const melody = "G4 G4 A4 B4:2 A4 G4:2 F#4 E4 D4:2 G4:4";
    const expected = [67, 67, 69, 71, 69, 67, 66, 64, 62, 67];
    await page.fill("#melody-notes", melody);
    assert.equal(await page.inputValue("#melody-part"), "Soprano");
    const latest = async () => (await (await fetch(`${base}/v1/compositions?limit=1`)).json())[0];
    const before = (await latest()).composition_id;
    await page.click("#generate");
    await page.waitForFunction(() => /of music/.test(document.querySelector("#compose-status").textContent) &&
      !document.querySelector("#generate").disabled, null, { timeout: 60_000 });
    const piece = await latest();
    assert.notEqual(piece.composition_id, before);
    const sung = piece.notes.filter((note) => note.part?.name === "Soprano");
    assert.deepEqual(sung.map((note) => note.pitch), expected);
    assert.ok(piece.notes.some((note) => note.part?.name === "Bass"), "the model wrote a bass");
    const given = await page.$$eval("#roll-legend li", (items) =>
      items.filter((item) => item.querySelector(".given")).map((item) => item.querySelector(".part-name").textContent));
    assert.deepEqual(given, ["Soprano"]);
    await page.locator(".player").screenshot({ path: join(shots, "04b-harmonized.png") });

    // Mute and solo are toggles; an instrument picked for the bass is the next piece's.
    await page.click("button[aria-label='Mute the Alto']");
    assert.equal(await page.getAttribute("button[aria-label='Mute the Alto']", "aria-pressed"), "true");
    await page.selectOption("select[aria-label='Instrument of the Bass']", "58");
    await page.click("#generate");
    await page.waitForFunction((id) => fetch("/v1/compositions?limit=1").then((r) => r.json())
      .then((list) => list[0].composition_id !== id), piece.composition_id, { timeout: 60_000, polling: 500 });
    await page.waitForFunction(() => !document.querySelector("#generate").disabled, null, { timeout: 60_000 });
    const tuba = (await latest()).notes.filter((note) => note.part?.name === "Bass");
    assert.ok(tuba.length > 0 && tuba.every((note) => note.program === 58), "the bass plays the tuba");
    await page.fill("#melody-notes", "");
  });

  await step("upload a zip of jsb-mini and read the ingest report", async () => {
    const zip = join(work, "jsb-mini.zip");
    execFileSync("python3", ["-c", `import shutil, sys; shutil.make_archive(sys.argv[1][:-4], "zip", sys.argv[2])`,
      zip, join(root, "..", "shared", "data", "jsb-mini")]);
    await page.fill("#dataset-name", "jsb-mini");
    await page.setInputFiles("#dataset-files", zip);
    await page.click("#upload");
    await page.waitForFunction(() => /Accepted \d+ file/.test(document.querySelector("#report").textContent));
    assert.match(await page.textContent("#report"), /Accepted 12 file\(s\)/);
    await page.locator("#upload-form").screenshot({ path: join(shots, "05-upload-report.png") });
  });

  await step("train a tiny model and watch its epochs on the chart", async () => {
    await page.fill("#job-epochs", "4");
    await page.fill("#job-overrides", JSON.stringify({ hidden_size: 16, layers: 1, embedding_size: 8, window: 16, batch_size: 8 }));
    await page.click("#start-job");
    await page.waitForFunction(() => document.querySelectorAll("#epochs tbody tr").length >= 2, null, { timeout: 120_000 });
    await page.locator(".training").screenshot({ path: join(shots, "06-training-chart.png") });
    await page.waitForFunction(() => document.querySelector("#job-status").textContent.startsWith("Done"), null, { timeout: 120_000 });
    await page.waitForFunction(() => [...document.querySelectorAll("#model-list tbody tr")]
      .some((row) => row.textContent.includes("trained")), null, { timeout: 30_000 });
    await page.locator("#models").screenshot({ path: join(shots, "07-models.png") });
  });

  await step("search two trials and watch a line per trial on the chart", async () => {
    await page.fill("#job-epochs", "2");
    await page.fill("#job-trials", "2");
    await page.fill("#job-search-minutes", "1");
    await page.fill("#job-overrides", JSON.stringify({ hidden_size: 16, layers: 1, embedding_size: 8, window: 16, batch_size: 8 }));
    await page.click("#start-job");
    await page.waitForFunction(() => document.querySelector("#job-status").textContent.startsWith("Done"), null, { timeout: 120_000 });
    await page.waitForSelector("#trial-legend li.winner", { timeout: 30_000 });
    // One line per trial: each drawn from its own epochs, the winner's two, the stopped one's one.
    const lines = await page.$$eval("#trial-legend li", (items) => items.map((item) => ({
      trial: item.dataset.trial, points: Number(item.dataset.points), winner: item.classList.contains("winner"), text: item.textContent,
    })));
    assert.equal(lines.length, 2, JSON.stringify(lines));
    assert.deepEqual(lines.map((line) => line.points).sort(), [1, 2], JSON.stringify(lines));
    assert.equal(lines.find((line) => line.winner).points, 2, JSON.stringify(lines));
    assert.ok(lines.every((line) => /learning_rate \d/.test(line.text)), JSON.stringify(lines));
    assert.equal(await page.locator("#epochs tbody tr").count(), 0, "a search's epochs are its trials'");
    await page.locator(".training").screenshot({ path: join(shots, "06c-search-chart.png") });
    await page.fill("#job-trials", "0");
  });

  await step("watch a slower job's chart move within its epoch, then cancel it", async () => {
    // Some 250 steps an epoch, several seconds: progress messages arrive between epochs.
    await page.fill("#job-epochs", "3");
    await page.fill("#job-overrides", JSON.stringify({ hidden_size: 256, layers: 1, embedding_size: 8, window: 16, batch_size: 1 }));
    await page.click("#start-job");
    await page.waitForFunction(() => /^Epoch 1: step \d+ of \d+ \(\d+%\)/.test(document.querySelector("#job-status").textContent),
      null, { timeout: 120_000 });
    await page.locator(".training").screenshot({ path: join(shots, "06b-training-progress.png") });
    assert.equal(await page.locator("#epochs tbody tr").count(), 0, "no epoch has ended yet");
    await page.click("#cancel-job");
    await page.waitForFunction(() => document.querySelector("#job-status").textContent.startsWith("Cancelled"), null, { timeout: 60_000 });
  });

  await step("make the trained model the default from the list", async () => {
    await page.click("#model-list button[aria-label^='Make ']");
    await page.waitForFunction(() => [...document.querySelectorAll("#model-list tbody tr")]
      .some((row) => row.textContent.includes("trained") && row.lastElementChild.textContent === "default"));
    const system = await (await fetch(`${base}/v1/system`)).json();
    assert.notEqual(system.default_model, "default", JSON.stringify(system) + JSON.stringify((await (await fetch(`${base}/v1/models`)).json()).map((m) => [m.id, m.name, m.source, m.is_default])));
  });

  await step("a model's view charts its evaluation against its held-out files and runs a new one", async () => {
    // The bundled default ships with one: 20 pieces of 256 notes.
    await page.click("button[aria-label='View the evaluation of default']");
    await page.waitForFunction(() => document.querySelectorAll("#evaluation-charts figure").length === 3);
    assert.match(await page.textContent("#evaluation-summary"), /^20 pieces of 256 notes \(seeds 1–20\) against 62 held-out files/);
    const bars = await page.$$eval("#evaluation-charts figure", (figures) => figures.map((figure) => ({
      feature: figure.dataset.feature,
      generated: [...figure.querySelectorAll("rect.generated")].map((bar) => Number(bar.getAttribute("height"))),
      heldOut: [...figure.querySelectorAll("rect.held-out")].map((bar) => Number(bar.getAttribute("height"))),
      caption: figure.querySelector("figcaption").textContent,
    })));
    assert.deepEqual(bars.map((chart) => [chart.feature, chart.generated.length, chart.heldOut.length]),
      [["pitch_classes", 12, 12], ["inter_onset_intervals", 9, 9], ["melodic_intervals", 14, 14]]);
    for (const chart of bars) {
      // Both sets drawn, the tallest bar of the two filling the chart's height.
      assert.ok(chart.generated.some((h) => h > 0) && chart.heldOut.some((h) => h > 0), JSON.stringify(chart));
      assert.equal(Math.max(...chart.generated, ...chart.heldOut), 90, JSON.stringify(chart));
      assert.match(chart.caption, /: overlap 0\.\d\d$/);
    }
    assert.equal(await page.$$eval("#evaluation-scalars tbody tr", (rows) => rows.length), 4);
    await page.locator("#model-view").screenshot({ path: join(shots, "09-evaluation.png") });

    // Refused beside the field at fault, then a small one run and charted.
    await page.fill("#evaluation-pieces", "65");
    await page.click("#run-evaluation");
    await page.waitForFunction(() => document.querySelector("#error-evaluation-pieces").textContent.length > 0);
    assert.match(await page.textContent("#error-evaluation-pieces"), /64/);
    await page.fill("#evaluation-pieces", "2");
    await page.fill("#evaluation-notes", "32");
    await page.fill("#evaluation-seed", "3");
    await page.click("#run-evaluation");
    await page.waitForFunction(() => document.querySelector("#evaluation-status").textContent.startsWith("Done"), null, { timeout: 120_000 });
    assert.match(await page.textContent("#evaluation-summary"), /^2 pieces of 32 notes \(seeds 3–4\)/);
    const model = await (await fetch(`${base}/v1/models/default`)).json();
    assert.equal(model.music_evaluation.pieces, 2);
    await page.locator("#model-view").screenshot({ path: join(shots, "10-evaluation-run.png") });
  });

  await step("past compositions name the model that made them", async () => {
    const models = await (await fetch(`${base}/v1/models`)).json();
    const trained = models.find((model) => model.source === "trained");
    const response = await fetch(`${base}/v1/generate`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: trained.id, length: { notes: 8 }, seed: 1 }),
    });
    assert.equal(response.status, 201);
    await page.goto(`${base}/`);
    await page.waitForFunction((name) => document.querySelector("#history li span")?.textContent.includes(name),
      `${trained.name} (${trained.id.slice(0, 8)})`);
    assert.ok(!(await page.textContent("#history li span")).includes(trained.id), "the model's whole id is not shown");
  });

  await step("no sideways scrolling from phone to desktop width, beside a vertical scrollbar", async () => {
    for (const [width, height, shot] of [[390, 844, "08-phone.png"], [1024, 768], [1280, 800, "08-1280.png"], [1920, 1080, "08-1920.png"]]) {
      await page.setViewportSize({ width, height });
      await page.goto(`${base}/`);
      await page.waitForSelector("#history li button");
      const { scrollWidth, clientWidth } = await pageWidths(page);
      assert.ok(clientWidth < width, `at ${width}px the page has a vertical scrollbar`);
      assert.ok(scrollWidth <= clientWidth, `at ${width}px the page is ${scrollWidth - clientWidth}px wider than its window`);
      if (shot) await page.screenshot({ path: join(shots, shot), fullPage: true });
    }
  });

  assert.deepEqual(pageErrors, [], "no script errors on the page");
} catch (error) {
  failed = true;
  console.error(`browser: FAILED: ${error.stack ?? error}`);
} finally {
  await browser.close();
  server.kill();
  rmSync(work, { recursive: true, force: true });
}
console.log(`browser: ${steps.length} steps passed; screenshots in ${shots}`);
process.exit(failed ? 1 : 0);
