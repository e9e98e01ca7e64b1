// The AnomaLens page: inspect one image through /v1/inspect, then chat about it through /v1/chat.
const $ = (id) => document.getElementById(id);
let inspectionId = null;

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function loadModels() {
  try {
    const { models } = await call("/v1/models");
    const select = $("model");
    select.innerHTML = "";
    for (const m of models.filter((m) => m.ok)) {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = `${m.id} (${m.n_normal} normal images)`;
      select.appendChild(option);
    }
    if (!select.options.length) {
      select.innerHTML = '<option value="">(no models yet)</option>';
      document.querySelector('input[name=mode][value=refs]').checked = true;
    }
  } catch (error) {
    setStatus(`Could not list models: ${error.message}`, true);
  }
}

function showResult(file, result) {
  $("result").hidden = false;
  $("chat").hidden = false;
  $("original").src = URL.createObjectURL(file);
  $("overlay").src = `data:image/png;base64,${result.overlay_png}`;
  const verdict = $("verdict");
  verdict.textContent = result.answer + ` (confidence ${Math.round(result.confidence * 100)}%)`;
  verdict.className = result.anomalous ? "defect" : "ok";
  const list = $("regions");
  list.innerHTML = "";
  result.regions.forEach((r, i) => {
    const item = document.createElement("li");
    item.textContent = `Region ${i + 1}: ${r.location}, ${(r.area_fraction * 100).toFixed(1)}% of the image, ` +
      `box (${r.box[0]}, ${r.box[1]})–(${r.box[2]}, ${r.box[3]})`;
    list.appendChild(item);
  });
  $("messages").innerHTML = "";
  addMessage("bot", result.answer);
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

$("inspect").addEventListener("click", async () => {
  const file = $("query").files[0];
  if (!file) return setStatus("Choose a product image first.", true);
  const form = new FormData();
  form.append("files", file);
  form.append("overlay", "true");
  const className = $("class-name").value.trim();
  if (className) form.append("class_name", className);
  const mode = document.querySelector("input[name=mode]:checked").value;
  if (mode === "model") {
    if (!$("model").value) return setStatus("No fitted model: choose reference images instead.", true);
    form.append("model_id", $("model").value);
  } else {
    const refs = $("refs").files;
    if (!refs.length) return setStatus("Choose one or more normal reference images.", true);
    for (const ref of refs) form.append("references", ref);
  }
  $("inspect").disabled = true;
  setStatus("Inspecting…");
  try {
    const body = await call("/v1/inspect", { method: "POST", body: form });
    const result = body.results[0];
    if (!result.ok) throw new Error(`${result.file}: ${result.error}`);
    inspectionId = result.inspection_id;
    showResult(file, result);
    setStatus(`Inspected with ${body.expert}.`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("inspect").disabled = false;
  }
});

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || !inspectionId) return;
  addMessage("user", question);
  $("question").value = "";
  $("ask").disabled = true;
  try {
    const turn = await call("/v1/chat", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inspection_id: inspectionId, question }),
    });
    const note = turn.guard && turn.guard.corrected ? `Corrected to match the vision expert (the model said: ${turn.model_answer})` : "";
    addMessage("bot", turn.answer, note);
  } catch (error) {
    addMessage("bot", `Error: ${error.message}`);
  } finally {
    $("ask").disabled = false;
  }
});

loadModels();
