"""The Python SDK generated from fugue's live OpenAPI document, used as a user would.

Run by scripts/api-clients-test.sh with the generated `fugue_client` package on
sys.path and the server's address as the first argument. Everything goes through
the generated client: upload a dataset, train a tiny model and poll the job to the
end, list models, generate with the new model, download its MIDI file and audio
(read as files from the client's parsed answers).
"""

import io
import pathlib
import sys
import time
import zipfile

from fugue_client import AuthenticatedClient
from fugue_client.api.datasets import create_dataset
from fugue_client.api.generate import composition_audio, composition_midi, generate
from fugue_client.api.models import list_models
from fugue_client.api.training import create_training_job, get_training_job
from fugue_client.models import (
    Composition,
    Dataset,
    DatasetUpload,
    GenerateRequest,
    Given,
    HyperparameterOverrides,
    JobState,
    LengthType0,
    PartRequest,
    Preset,
    PrimerNote,
    TrainingJob,
    TrainingJobRequest,
)
from fugue_client.types import File

base, shared = sys.argv[1], pathlib.Path(sys.argv[2])
# The server may run without keys; a token is sent either way, as users with keys do.
client = AuthenticatedClient(base_url=base, token="sdk-test", raise_on_unexpected_status=True, timeout=120)
exercised = []


def check(condition, message):
    if not condition:
        raise SystemExit(f"sdk: FAILED: {message}")


# 1. Upload a dataset: jsb-mini as a zip.
archive = io.BytesIO()
with zipfile.ZipFile(archive, "w") as zipped:
    for path in sorted((shared / "jsb-mini").rglob("*.mid")):
        zipped.write(path, path.relative_to(shared))
upload = DatasetUpload(files=[File(payload=io.BytesIO(archive.getvalue()), file_name="jsb-mini.zip")], name="jsb-mini")
dataset = create_dataset.sync(client=client, body=upload)
check(isinstance(dataset, Dataset), f"upload answered {dataset!r}")
check(len(dataset.report.accepted) == 12, f"{len(dataset.report.accepted)} files accepted")
exercised.append(f"create_dataset: {dataset.file_count} files")

# 2. A tiny training job, polled to the end.
overrides = HyperparameterOverrides(epochs=2, hidden_size=16, layers=1, embedding_size=8, window=16, batch_size=8, seed=3)
request = TrainingJobRequest(dataset_id=dataset.id, preset=Preset.FUGUE, hyperparameters=overrides, name="sdk")
job = create_training_job.sync(client=client, body=request)
check(isinstance(job, TrainingJob), f"submitting answered {job!r}")
deadline = time.time() + 120
while job.state in (JobState.QUEUED, JobState.RUNNING):
    check(time.time() < deadline, "the job did not finish in 2 minutes")
    time.sleep(0.2)
    job = get_training_job.sync(job.id, client=client)
check(job.state == JobState.SUCCEEDED, f"the job ended {job.state}: {job.error}")
check(len(job.epochs) == 2, f"{len(job.epochs)} epochs")
exercised.append(f"create_training_job + get_training_job: {job.state.value} after {len(job.epochs)} epochs")

# 3. The model is listed.
models = list_models.sync(client=client)
trained = [model for model in models if model.id == job.model_id]
check(len(trained) == 1, f"the trained model is not in {[m.id for m in models]}")
exercised.append(f"list_models: {len(models)} models")

# 4. Generate with it, and 5. download the MIDI file.
body = GenerateRequest(model=job.model_id, length=LengthType0(notes=24), seed=5)
piece = generate.sync(client=client, body=body)
check(isinstance(piece, Composition), f"generate answered {piece!r}")
check(len(piece.notes) >= 1 and piece.seed == 5, "no notes")
exercised.append(f"generate: {len(piece.notes)} notes")
midi = composition_midi.sync(piece.composition_id, client=client)
check(isinstance(midi, File), f"the MIDI download parsed as {midi!r}, not a file")
midi_bytes = midi.payload.read()
check(midi_bytes[:4] == b"MThd", f"the download is not MIDI: {midi_bytes[:16]!r}")
exercised.append(f"composition_midi: {len(midi_bytes)} bytes of MIDI")

# 5b. Its audio, WAV by default and FLAC by the query, as parsed files too.
wav = composition_audio.sync(piece.composition_id, client=client)
check(isinstance(wav, File), f"the audio download parsed as {wav!r}, not a file")
wav_bytes = wav.payload.read()
check(wav_bytes[:4] == b"RIFF" and wav_bytes[8:12] == b"WAVE", f"the download is not WAV: {wav_bytes[:16]!r}")
flac = composition_audio.sync(piece.composition_id, client=client, format_="flac")
check(isinstance(flac, File) and flac.payload.read(4) == b"fLaC", f"the FLAC download parsed as {flac!r}")
exercised.append(f"composition_audio: {len(wav_bytes)} bytes of WAV, and FLAC")

# 6. Generate in parts with the bundled default, a four-voice chorale model: a
#    soprano for a flute and a bass for a tuba, each in its range, one note at a time.
parts = [
    PartRequest(name="soprano", program=73, pitch_range=[62, 79], max_polyphony=1),
    PartRequest(name="bass", program=58, pitch_range=[40, 60], max_polyphony=1),
]
piece = generate.sync(client=client, body=GenerateRequest(length=LengthType0(notes=32), seed=3, parts=parts))
check(isinstance(piece, Composition) and piece.notes, f"generate with parts answered {piece!r}")
ranges = {"Soprano": (62, 79, 73), "Bass": (40, 60, 58)}
for note in piece.notes:
    low, high, program = ranges[note.part.name]
    check(low <= note.pitch <= high and note.program == program, f"{note.part.name} plays {note.pitch}, program {note.program}")
exercised.append(f"generate with parts: {len(piece.notes)} notes in {sorted({n.part.name for n in piece.notes})}")

# 7. Harmonize a melody: the given soprano comes back note for note, and the model
#    writes the other voices under it.
melody = [(67, 0, 1), (67, 1, 1), (69, 2, 1), (71, 3, 1), (72, 4, 2), (71, 6, 2)]
given = Given(
    part="soprano",
    notes=[PrimerNote(pitch=p, start_beat=s, duration_beats=d, velocity=70) for p, s, d in melody],
)
piece = generate.sync(client=client, body=GenerateRequest(seed=4, given=given))
check(isinstance(piece, Composition), f"harmonizing answered {piece!r}")
sung = [(n.pitch, n.start_beat, n.duration_beats, n.velocity) for n in piece.notes if n.part.name == "Soprano"]
check(sung == [(p, s, d, 70) for p, s, d in melody], f"the given soprano came back as {sung}")
others = sorted({n.part.name for n in piece.notes} - {"Soprano"})
check(others, "no part was written around the melody")
exercised.append(f"harmonize: {len(piece.notes) - len(sung)} notes in {others} under the given soprano")

print("sdk: ok: " + "; ".join(exercised))
