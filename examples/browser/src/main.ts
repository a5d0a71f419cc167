// The page: pick a model (drop a Hugging Face folder, or the tiny model served next to the page), a recipe and texts;
// the worker quantizes, reports progress, and sends back the report and the quantized files.
import { PRESETS, type JobEvent, type JobRequest, type ModelInput } from './protocol.js';
import { RECIPE_FILES } from './recipe-files.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const drop = $<HTMLDivElement>('drop');
const picker = $<HTMLInputElement>('picker');
const modelLabel = $<HTMLSpanElement>('model-label');
const recipeSelect = $<HTMLSelectElement>('recipe');
const baselineSelect = $<HTMLSelectElement>('baseline');
const recipeText = $<HTMLTextAreaElement>('recipe-text');
const calibration = $<HTMLTextAreaElement>('calibration');
const evaluation = $<HTMLTextAreaElement>('evaluation');
const runButton = $<HTMLButtonElement>('run');
const cancelButton = $<HTMLButtonElement>('cancel');
const bar = $<HTMLProgressElement>('progress');
const status = $<HTMLDivElement>('status');
const summary = $<HTMLDivElement>('summary');
const downloads = $<HTMLUListElement>('downloads');
const report = $<HTMLIFrameElement>('report');

for (const preset of PRESETS) recipeSelect.add(new Option(`${preset.file}: ${preset.label}`, preset.file));
for (const name of Object.keys(RECIPE_FILES).filter((n) => n.startsWith('rtn-'))) baselineSelect.add(new Option(name, name));

/** Choosing a preset puts its recipe file in the text box and picks its baseline. */
function choosePreset(): void {
  const preset = PRESETS.find((p) => p.file === recipeSelect.value) ?? PRESETS[0];
  recipeText.value = RECIPE_FILES[preset.file] ?? '';
  baselineSelect.value = preset.baseline ?? '';
}
recipeSelect.addEventListener('change', choosePreset);
choosePreset();

let model: ModelInput | undefined;
let worker: Worker | undefined;

function setModel(input: ModelInput, label: string): void {
  model = input;
  modelLabel.textContent = label;
  runButton.disabled = false;
  document.body.dataset.state = 'model-ready';
}

/** The files of a drop: plain files, or the entries of a dropped folder (read through the File System entries API). */
async function droppedFiles(data: DataTransfer): Promise<File[]> {
  const entries = [...data.items].map((item) => item.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => Boolean(e));
  if (entries.length === 0 || entries.every((e) => e.isFile)) return [...data.files];
  const files: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) files.push(await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject)));
    else {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of entries) await walk(entry);
  return files;
}

function useFiles(files: File[]): void {
  const names = files.map((f) => f.name);
  const weights = names.includes('model.safetensors') || names.includes('model.safetensors.index.json');
  if (!names.includes('config.json') || !weights || !names.includes('tokenizer.json')) {
    status.textContent = `A Hugging Face folder needs config.json, model.safetensors (or its shards with model.safetensors.index.json) and tokenizer.json; got ${names.join(', ') || 'nothing'}`;
    return;
  }
  const megabytes = files.reduce((a, f) => a + f.size, 0) / 2 ** 20;
  setModel({ kind: 'files', files }, `${files.length} dropped files (${megabytes.toFixed(1)} MiB)`);
}

drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer) droppedFiles(e.dataTransfer).then(useFiles, (error: Error) => (status.textContent = `Cannot read the drop: ${error.message}`));
});
picker.addEventListener('change', () => useFiles([...(picker.files ?? [])]));
$<HTMLButtonElement>('bundled').addEventListener('click', () => setModel({ kind: 'url', url: 'models/tinystories-656k/' }, 'tinystories-656k (served with the page)'));

function formatSeconds(s: number): string {
  return s < 60 ? `${s.toFixed(0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function offer(name: string, bytes: ArrayBuffer): void {
  const li = document.createElement('li');
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes]));
  a.download = name;
  a.textContent = `${name} (${(bytes.byteLength / 1024).toFixed(1)} kB)`;
  li.append(a);
  downloads.append(li);
}

function onEvent(event: JobEvent): void {
  if (event.type === 'progress') {
    bar.value = event.fraction;
    status.textContent = `${(100 * event.fraction).toFixed(0)}%: ${event.message}${event.etaSeconds !== undefined ? ` (about ${formatSeconds(event.etaSeconds)} left)` : ''}`;
    return;
  }
  runButton.disabled = false;
  cancelButton.disabled = true;
  if (event.type === 'error') {
    status.textContent = `Failed: ${event.message}`;
    document.body.dataset.state = 'error';
    return;
  }
  bar.value = 1;
  status.textContent = `Done in ${formatSeconds(event.seconds)} on the ${event.backend} backend; the model is saved as ${event.format}.`;
  const rows = event.runs.map(
    (r) =>
      `<tr><td>${r.recipe}</td><td>${r.averageBitsPerWeight.toFixed(3)}</td><td>${r.perplexity.toFixed(3)}</td><td>${r.kl.toFixed(4)}</td><td>${(100 * r.top1Agreement).toFixed(1)}%</td><td>${r.meanOutputError.toFixed(4)}</td></tr>`,
  );
  summary.innerHTML = `<table><thead><tr><th>recipe</th><th>bits/weight</th><th>perplexity (float ${event.floatPerplexity.toFixed(3)})</th><th>KL to float</th><th>top-1</th><th>mean layer error</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  for (const file of event.files) offer(file.name, file.bytes);
  report.srcdoc = event.html;
  // For scripts driving the page (the headless-Chromium test): the figures of the finished job.
  (window as unknown as { bitsmithResult: unknown }).bitsmithResult = { floatPerplexity: event.floatPerplexity, runs: event.runs, files: event.files.map((f) => ({ name: f.name, bytes: f.bytes.byteLength })), format: event.format, backend: event.backend, seconds: event.seconds };
  document.body.dataset.state = 'done';
}

runButton.addEventListener('click', () => {
  if (!model) return;
  runButton.disabled = true;
  cancelButton.disabled = false;
  downloads.replaceChildren();
  summary.replaceChildren();
  bar.value = 0;
  document.body.dataset.state = 'running';
  worker ??= new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = (e: MessageEvent<JobEvent>) => onEvent(e.data);
  worker.onerror = (e) => onEvent({ type: 'error', message: e.message });
  const request: JobRequest = {
    type: 'run',
    model,
    recipe: { name: recipeText.value === RECIPE_FILES[recipeSelect.value] ? recipeSelect.value : 'recipe', text: recipeText.value },
    ...(baselineSelect.value ? { baseline: { name: baselineSelect.value, text: RECIPE_FILES[baselineSelect.value]! } } : {}),
    calibrationText: calibration.value,
    evaluationText: evaluation.value,
    samples: 32,
    sequenceLength: 128,
  };
  worker.postMessage(request);
});

// Cancelling ends the worker (its memory goes with it); the next run starts a fresh one.
cancelButton.addEventListener('click', () => {
  worker?.terminate();
  worker = undefined;
  bar.value = 0;
  status.textContent = 'Cancelled.';
  runButton.disabled = false;
  cancelButton.disabled = true;
  document.body.dataset.state = 'model-ready';
});

// Default texts: the ones the build copied next to the page (from ../shared/data), when there.
for (const [box, file] of [[calibration, 'texts/calibration.txt'], [evaluation, 'texts/evaluation.txt']] as const) {
  fetch(file)
    .then((r) => (r.ok ? r.text() : undefined))
    .then((text) => {
      if (text) box.value = text;
    })
    .catch(() => undefined);
}

// Texts: a file dropped on a text box replaces its content.
for (const box of [calibration, evaluation, recipeText]) {
  box.addEventListener('dragover', (e) => e.preventDefault());
  box.addEventListener('drop', (e) => {
    e.preventDefault();
    const file = e.dataTransfer?.files[0];
    if (file) file.text().then((text) => (box.value = text));
  });
}
