// The AnomaLens page: what the API does, from a browser. Inspect images through /v1/inspect (a fitted
// model, normal references or zero-shot), chat about a result through /v1/chat, and fit a model from
// normal images through /v1/models and /v1/jobs; inspect a time series through /v1/series/inspect and chat
// about it through /v1/series/chat. The batch's gallery and one part in detail: gallery.js; review: review.js
// (a box drawn on the image: draw.js); the records' history: history.js; the models: models.js (tabs: views.js).
const $ = (id) => document.getElementById(id);
let inspectionId = null;
let seriesId = null;  // set while the chat is about a series (then inspectionId is null), and the reverse
// the last inspection's images, results (as they arrive) and the feedback given, all in upload order
let batch = { files: [], results: [], reviews: [] };
const CHUNK = 8;  // images per request with a fitted model: the first verdicts show while the rest are scored
let originalUrl = null;  // the object URL the shown image is drawn from (revoked when replaced)
let originalShown = null;  // the image the detail shows (a server image arrives later: only the latest is shown)
let latest = 0;  // counts the inspection requests: only the latest one's answer is shown
const LIST_FAILED = "Could not list models";
// The answer says how sure it is itself when the verdict is uncertain ("uncertain: 0.64 — a second look is
// advised") or states its confidence ("confidence 62%")
const STATES_CONFIDENCE = /\bconfidence \d+(\.\d+)?\s?%|\buncertain: \d/i;

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function show(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}
const setStatus = (text, isError) => show($("status"), text, isError);
const setFitStatus = (text, isError) => show($("fit-status"), text, isError);

// Why files were refused: the per-file reasons a refusal or a partial result carries.
function fileErrors(body) {
  const refused = (body.results || []).filter((r) => !r.ok).map((r) => `${r.file}: ${r.error}`);
  return [...refused, ...(body.skipped || []), ...(body.references || [])];
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const error = new Error([body.error || `HTTP ${response.status}`, ...fileErrors(body)].join("\n"));
    error.body = body;
    throw error;
  }
  return body;
}

// Lists the models in the model choice (keeping `selected`) and in the models view; the list, or none on failure.
async function loadModels(selected) {
  try {
    const { models } = await call("/v1/models");
    const select = $("model");
    select.innerHTML = "";
    for (const m of models.filter((m) => m.ok)) {
      const option = document.createElement("option");
      option.value = m.id;
      const taught = m.version > 1 ? `, version ${m.version}` : "";  // a version 1 is the model as fitted
      option.textContent = `${m.id} (${m.n_normal} normal images${taught})`;
      select.appendChild(option);
    }
    if (selected) select.value = selected;
    if (!select.options.length) {
      select.innerHTML = '<option value="">(no models yet)</option>';
      const modelMode = document.querySelector("input[name=mode][value=model]");
      if (modelMode.checked) document.querySelector("input[name=mode][value=refs]").checked = true;
    }
    if ($("status").textContent.startsWith(LIST_FAILED)) setStatus("");
    showModels(models);
    return models;
  } catch (error) {
    setStatus(`${LIST_FAILED}: ${error.message}`, true);
  }
}

// Shows the part's image: an uploaded File, or a server folder's image ({root, path}: folders.js), fetched;
// the previous image is taken off at once, so that nothing is drawn on it meanwhile.
async function setOriginal(source) {
  clearDrawing();  // a box or mask drawn marks the image it was drawn on
  if (originalUrl) URL.revokeObjectURL(originalUrl);
  originalUrl = null;
  originalShown = source;
  const images = [$("original"), $("overlay-base")];  // the heatmap is laid over the image: opacity
  for (const img of images) img.removeAttribute("src");
  let blob = source;
  if (source && !(source instanceof Blob)) {
    blob = await serverImage(source).catch((error) => setStatus(`${source.path}: ${error.message}`, true));
    if (originalShown !== source || !blob) return;  // another part is shown meanwhile, or the image failed
  }
  if (!blob) return;
  originalUrl = URL.createObjectURL(blob);
  for (const img of images) img.src = originalUrl;
}

// Takes the previous result off the page (verdict, pictures, regions, batch, chat) as a new inspection is
// sent, so a refusal or a slow answer never leaves an old verdict next to the new file. Returns the new
// request's number: an answer is shown only while its number is still the latest.
function clearResult() {
  inspectionId = null;
  seriesId = null;
  batch = { files: [], results: [], reviews: [] };
  galleryPage = 0;
  $("result").hidden = true;
  $("chat").hidden = true;
  $("batch").innerHTML = "";
  $("gallery").hidden = true;
  $("review").hidden = true;
  $("distribution").hidden = true;
  $("verdict").textContent = "";
  $("verdict").className = "";
  setOriginal(null);
  $("overlay").removeAttribute("src");
  $("series-plot").removeAttribute("src");
  $("regions").innerHTML = "";
  $("messages").innerHTML = "";
  showProgress(0, 0, 0);
  // the other form's status line described the result just removed (a model-list failure stays)
  if (!$("status").textContent.startsWith(LIST_FAILED)) setStatus("");
  show($("series-status"), "");
  return ++latest;
}

function addMessage(who, text, note) {
  const div = document.createElement("div");
  div.className = `msg ${who}`;
  div.textContent = text;
  if (note) {
    const span = document.createElement("span");
    span.className = "note";
    span.textContent = note;
    div.appendChild(span);
  }
  $("messages").appendChild(div);
  $("messages").scrollTop = $("messages").scrollHeight;
}

// The images and their model as /v1/inspect requests (batch.js sends them): one per CHUNK images with a fitted
// model, one for all otherwise (references are fitted per request; zero-shot compares a request's images).
function inspectRequests(files) {
  const mode = document.querySelector("input[name=mode]:checked").value;
  const chunk = mode === "model" ? CHUNK : files.length;
  const requests = [];
  for (let start = 0; start < files.length; start += chunk) {
    const form = new FormData();
    const count = Math.min(chunk, files.length - start);
    for (const file of files.slice(start, start + count)) form.append("files", file);
    form.append("overlay", "true");
    const className = $("class-name").value.trim();
    if (className) form.append("class_name", className);
    if (mode === "model") form.append("model_id", $("model").value);
    else if (mode === "refs") for (const ref of $("refs").files) form.append("references", ref);
    else form.append("zero_shot", "true");
    requests.push({ start, count, send: () => call("/v1/inspect", { method: "POST", body: form }) });
  }
  return requests;
}

$("inspect").addEventListener("click", async () => {
  const files = chosen.files;
  if (!files.length) return setStatus("Choose product images, a folder of them, or drop them on the page first.", true);
  const mode = document.querySelector("input[name=mode]:checked").value;
  if (mode === "model" && !$("model").value) return setStatus("No fitted model: choose reference images instead.", true);
  if (mode === "refs" && !$("refs").files.length) return setStatus("Choose one or more normal reference images.", true);
  $("inspect").disabled = true;
  try {
    await inspectBatch(files, inspectRequests(files));
  } finally {
    $("inspect").disabled = false;
  }
});

function showSeries(result) {
  seriesId = result.series_id;
  inspectionId = null;
  $("result").hidden = false;
  $("chat").hidden = false;
  $("gallery").hidden = true;
  $("review").hidden = true;
  $("distribution").hidden = true;
  $("pictures").hidden = true;
  $("series-figure").hidden = false;
  $("series-plot").src = `data:image/png;base64,${result.plot_png}`;
  const verdict = $("verdict");
  verdict.textContent = result.answer + ` (probability ${Math.round(result.probability * 100)}%)`;
  verdict.className = result.anomalous ? "defect" : "ok";
  const list = $("regions");
  list.innerHTML = "";
  result.windows.forEach((w, i) => {
    const item = document.createElement("li");
    item.textContent = `Window ${i + 1}: ${w.start_time} to ${w.end_time} (peak ${w.peak_time}), ${w.channels.join(", ")}: ${w.description}`;
    list.appendChild(item);
  });
  $("messages").innerHTML = "";
  addMessage("bot", result.answer);
}

$("series-inspect").addEventListener("click", async () => {
  const file = $("series-file").files[0];
  const status = (text, isError) => show($("series-status"), text, isError);
  if (!file) return status("Choose a series file (CSV or Parquet) first.", true);
  const form = new FormData();
  form.append("file", file);
  if ($("series-ref").files[0]) form.append("reference", $("series-ref").files[0]);
  $("series-inspect").disabled = true;
  const request = clearResult();
  status("Inspecting the series…");
  try {
    const result = await call("/v1/series/inspect", { method: "POST", body: form });
    if (request !== latest) return;  // a newer inspection was sent meanwhile
    showSeries(result);
    status("");
  } catch (error) {
    if (request === latest) status(error.message, true);
  } finally {
    $("series-inspect").disabled = false;
  }
});

$("fit").addEventListener("click", async () => {
  const files = $("fit-files").files;
  if (!files.length) return setFitStatus("Choose normal images of the product first.", true);
  const form = new FormData();
  for (const file of files) form.append("files", file);
  const modelId = $("fit-id").value.trim();
  if (modelId) form.append("model_id", modelId);
  $("fit").disabled = true;
  try {
    let job = await call("/v1/models", { method: "POST", body: form });
    while (job.status === "queued" || job.status === "running") {
      setFitStatus(`Fitting ${job.model_id}: ${job.done} of ${job.total} images…`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await call(`/v1/jobs/${encodeURIComponent(job.job_id)}`);
    }
    if (job.status !== "done") throw new Error(`Fitting ${job.model_id} failed: ${job.error}`);
    await loadModels(job.model_id);
    document.querySelector("input[name=mode][value=model]").checked = true;
    const model = await call(`/v1/models/${encodeURIComponent(job.model_id)}`);
    const summary = `Scale ${model.scale}; ${model.calibration}.`; // what the fit chose and decided on
    setFitStatus([`Model ${job.model_id} is ready (${job.total} images).`, summary, ...fileErrors(job)].join("\n"));
  } catch (error) {
    setFitStatus(error.message, true);
  } finally {
    $("fit").disabled = false;
  }
});

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || !(inspectionId || seriesId)) return;
  addMessage("user", question);
  $("question").value = "";
  $("ask").disabled = true;
  try {
    if (seriesId) {
      const reply = await call("/v1/series/chat", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ series_id: seriesId, question }),
      });
      return addMessage("bot", reply.answer, modelFailed(reply));
    }
    const turn = await call("/v1/chat", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inspection_id: inspectionId, question }),
    });
    const note = turn.guard && turn.guard.corrected ? `Corrected to match the vision expert (the model said: ${turn.model_answer})` : modelFailed(turn);
    addMessage("bot", turn.answer, note);
  } catch (error) {
    addMessage("bot", `Error: ${error.message}`);
  } finally {
    $("ask").disabled = false;
  }
});

// A language model that failed or died leaves the findings' own answer; the operator is told so.
function modelFailed(turn) {
  return turn.model_error ? `The language model failed (${turn.model_error}); answered from the findings.` : "";
}

let keyTyped = null;  // the model list is reloaded once the key has stopped changing
$("api-key").addEventListener("input", () => {
  clearTimeout(keyTyped);
  keyTyped = setTimeout(loadModels, 300);
});

loadModels();
