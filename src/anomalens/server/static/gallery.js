// A batch in a gallery (thumbnails with verdict, probability and defect type; sorted, filtered, counted) and
// one part in detail: image, heatmap (toggle, opacity), the nearest normal reference beside them, regions and
// where its score sits among the normal scores.

const SVG = "http://www.w3.org/2000/svg";
const NO_TYPE = "none";  // the defect-type filter's value for parts without a type; a type's is "type:<name>"
const GALLERY_PAGE = 100;  // thumbnails a page: a batch of hundreds stays quick to draw and to scan
let galleryPage = 0;
const referenceUrls = new Map();  // "model/name" → the object URL of a reference fetched (null: not kept)
let referenceWanted = null;  // the reference the detail shows: an answer for a part no longer shown is dropped

// A part's verdict now: the one decided again by the model its feedback taught, where it was (the operator's
// word and the taught model then agree), so that the verdict filter and the counts go by it.
function verdictOf(result) {
  return !result.ok ? "error" : (result.redecided || result).anomalous ? "anomalous" : "normal";
}

// The verdict as the inspection gave it, then as decided again: "anomalous · p 1.00 · re-decided normal · p 0.03".
function verdictWords(result) {
  const again = result.redecided;
  return `${result.anomalous ? "anomalous" : "normal"} · p ${result.probability.toFixed(2)}` +
    (again ? ` · re-decided ${again.anomalous ? "anomalous" : "normal"} · p ${again.probability.toFixed(2)}` : "");
}

// The part as decided now: the taught model's decision where a lesson decided it again, else the first one.
const decidedOf = (result) => (result.redecided && result.redecided.decision ? result.redecided : result);
const typeOf = (result) => (result.ok && result.defect_type ? `type:${result.defect_type}` : NO_TYPE);

// The parts shown, as indices into the batch: filtered by verdict, review and defect type, in the chosen order.
function visibleOrder() {
  const verdict = $("filter-verdict").value;
  const review = $("filter-review").value;
  const type = $("filter-defect-type").value;
  const order = batch.results.map((_, i) => i).filter((i) => batch.results[i]).filter((i) =>
    (!verdict || verdictOf(batch.results[i]) === verdict) &&
    (!review || (review === "reviewed") === Boolean(batch.reviews[i])) &&
    (!type || typeOf(batch.results[i]) === type));
  const score = (i) => (batch.results[i].ok ? (batch.results[i].redecided || batch.results[i]).score : -Infinity);
  if ($("sort").value === "score-desc") order.sort((a, b) => score(b) - score(a));
  if ($("sort").value === "score-asc") order.sort((a, b) => score(a) - score(b));
  return order;
}

function thumbnail(i) {
  const result = batch.results[i];
  const item = document.createElement("li");
  item.dataset.index = i;
  item.className = verdictOf(result);
  item.classList.toggle("shown", result.inspection_id === inspectionId && Boolean(inspectionId));
  const caption = document.createElement("span");
  const review = batch.reviews[i];
  caption.textContent = result.ok
    ? `${result.file}: ${verdictWords(result)}` + (result.defect_type ? ` · ${result.defect_type}` : "") +
      (review ? ` · reviewed: ${review.label}` : "")
    : `${result.file}: ${result.error}`;
  if (result.ok) {
    const img = document.createElement("img");
    img.src = `data:image/png;base64,${result.overlay_png}`;
    img.alt = `${result.file}, ${verdictOf(result)}`;
    item.appendChild(img);
    item.tabIndex = 0;
    item.setAttribute("role", "button");
    item.setAttribute("aria-label", caption.textContent);
    item.addEventListener("click", () => showResult(i));
  }
  if (review) item.classList.add("reviewed");
  item.appendChild(caption);
  return item;
}

// The defect-type filter offers the types the batch's results name (and none, where some name no type),
// keeping the one chosen while the batch has it.
function showTypeChoices(results) {
  const select = $("filter-defect-type");
  const chosen = select.value;
  const types = [...new Set(results.map(typeOf))].sort();
  const choices = [["", "all"], ...types.filter((t) => t !== NO_TYPE).map((t) => [t, t.slice(5)])];
  if (types.includes(NO_TYPE)) choices.push([NO_TYPE, "none"]);
  select.replaceChildren(...choices.map(([value, text]) => new Option(text, value)));
  select.value = choices.some(([value]) => value === chosen) ? chosen : "";
}

// With several images, a thumbnail each, a page of them at a time; a click shows that part in detail.
function showGallery() {
  const results = batch.results.filter(Boolean);
  $("gallery").hidden = results.length < 2;
  showTypeChoices(results);
  const order = visibleOrder();
  const pages = Math.max(1, Math.ceil(order.length / GALLERY_PAGE));
  galleryPage = Math.min(galleryPage, pages - 1);
  const shown = order.slice(galleryPage * GALLERY_PAGE, (galleryPage + 1) * GALLERY_PAGE);
  $("batch").replaceChildren(...shown.map(thumbnail));
  $("gallery-page").textContent = `Page ${galleryPage + 1} of ${pages} (${order.length} parts)`;
  $("gallery-prev").disabled = galleryPage === 0;
  $("gallery-next").disabled = galleryPage >= pages - 1;
  const defective = results.filter((r) => verdictOf(r) === "anomalous").length;
  const reviewed = batch.reviews.filter(Boolean).length;
  const failed = results.filter((r) => !r.ok).length;
  $("counts").textContent = `${defective} defective of ${results.length}` +
    (failed ? `, ${failed} not inspected` : "") + `; ${reviewed} reviewed`;
}

// The gallery page that holds part `index` (shown where it was on another page).
function pageTo(index) {
  const at = visibleOrder().indexOf(index);
  if (at < 0 || Math.floor(at / GALLERY_PAGE) === galleryPage) return;
  galleryPage = Math.floor(at / GALLERY_PAGE);
  showGallery();
}

function showFirst() {
  const first = visibleOrder().find((i) => batch.results[i].ok);
  if (first !== undefined) showResult(first);
}

function showResult(index) {
  const result = batch.results[index];
  inspectionId = result.inspection_id;
  seriesId = null;
  $("series-figure").hidden = true;
  $("pictures").hidden = false;
  $("result").hidden = false;
  $("chat").hidden = false;
  $("review").hidden = false;
  pageTo(index);
  for (const item of $("batch").children) item.classList.toggle("shown", Number(item.dataset.index) === index);
  setOriginal(batch.files[index]);
  $("overlay").src = `data:image/png;base64,${result.overlay_png}`;
  showVerdict(result);
  const list = $("regions");
  list.innerHTML = "";
  result.regions.forEach((r, i) => {
    const item = document.createElement("li");
    item.textContent = `Region ${i + 1}: ${r.location}, ${(r.area_fraction * 100).toFixed(1)}% of the image, ` +
      `box (${r.box[0]}, ${r.box[1]})–(${r.box[2]}, ${r.box[3]})`;
    list.appendChild(item);
  });
  showNearestReference(result);
  drawDistribution(decidedOf(result).decision);
  showReview(index);
  $("messages").innerHTML = "";
  addMessage("bot", result.answer);
}

function showVerdict(result) {
  const verdict = $("verdict");
  // an uncertain verdict's answer already says so: it is not repeated; one whose answer does not (a language
  // model's) says it here, from the result's decision
  const unsure = result.decision && result.decision.uncertain;
  verdict.textContent = STATES_CONFIDENCE.test(result.answer) ? result.answer
    : unsure ? `${result.answer} (uncertain: ${result.probability.toFixed(2)} — a second look is advised)`
    : `${result.answer} (confidence ${Math.round(result.confidence * 100)}%)`;
  if (result.known_defect) verdict.textContent += ` Flagged ${result.known_defect}.`;  // the defect memory's why
  const again = result.redecided;
  if (again) {
    verdict.textContent += ` Re-decided by the taught model: ${again.anomalous ? "anomalous" : "normal"} ` +
      `(p ${again.probability.toFixed(2)}).`;
  }
  verdict.className = verdictOf(result) === "anomalous" ? "defect" : "ok";
}

// The normal reference the part is most like, beside it, where its stored model keeps that reference; hidden
// otherwise. Fetched with the key (an image's src could not send it), once per reference.
async function showNearestReference(result) {
  const name = result.nearest_reference;
  const wanted = batch.modelId && name ? `${batch.modelId}/${name}` : null;
  referenceWanted = wanted;
  $("reference-figure").hidden = true;
  if (!wanted) return;
  if (!referenceUrls.has(wanted)) {
    const path = `/v1/models/${encodeURIComponent(batch.modelId)}/references/${encodeURIComponent(name)}`;
    const response = await fetch(path, { headers: headers() }).catch(() => null);
    if (!response) return;  // no answer: tried again when the part is shown again
    referenceUrls.set(wanted, response.ok ? URL.createObjectURL(await response.blob()) : null);
  }
  if (referenceWanted !== wanted || !referenceUrls.get(wanted)) return;
  $("nearest-reference").src = referenceUrls.get(wanted);
  $("nearest-reference").alt = `the nearest normal reference, ${name}`;
  $("reference-caption").textContent = `Nearest normal reference: ${name}`;
  $("reference-figure").hidden = false;
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text) element.textContent = text;
  return element;
}

// The normal scores' predictive distribution (Student-t: the decision's median, spread and degrees of freedom)
// with the threshold and this part's score marked; hidden where the model has no normal scores.
function drawDistribution(decision) {
  const figure = $("distribution");
  figure.hidden = !(decision && decision.normal_median !== null && decision.normal_median !== undefined);
  if (figure.hidden) return;
  const { normal_median: median, normal_spread: spread, normal_dof: dof, threshold, score } = decision;
  const lo = Math.min(median - 4 * spread, score, threshold);
  const hi = Math.max(median + 4 * spread, score, threshold);
  const pad = (hi - lo) * 0.05;
  const [width, base, top] = [400, 100, 14];
  const x = (value) => (10 + ((value - lo + pad) / (hi - lo + 2 * pad)) * (width - 20)).toFixed(1);
  const density = (value) => (1 + ((value - median) / spread) ** 2 / dof) ** (-(dof + 1) / 2);  // peak 1
  const steps = Array.from({ length: 121 }, (_, k) => lo - pad + (k / 120) * (hi - lo + 2 * pad));
  const curve = steps.map((v) => `${x(v)},${(base - density(v) * (base - top)).toFixed(1)}`).join(" ");
  const plot = $("distribution-plot");
  plot.replaceChildren(
    svgElement("polygon", { class: "normal", points: `${x(steps[0])},${base} ${curve} ${x(steps[120])},${base}` }),
    svgElement("line", { class: "axis", x1: 10, x2: width - 10, y1: base, y2: base }),
    svgElement("line", { class: "threshold", x1: x(threshold), x2: x(threshold), y1: top - 8, y2: base }),
    svgElement("text", { class: "threshold", x: x(threshold), y: base + 14 }, "threshold"),
    svgElement("line", { class: "part", x1: x(score), x2: x(score), y1: top - 8, y2: base }),
    svgElement("circle", { class: "part", cx: x(score), cy: base, r: 5 }),
    svgElement("text", { class: "part", x: x(score), y: base + 28 }, "this part"),
  );
  $("distribution-caption").textContent = `This part's score ${score.toFixed(3)}; threshold ${threshold.toFixed(3)}; ` +
    `normal parts: median ${median.toFixed(3)}, spread ${spread.toFixed(3)} (${decision.n_normal} normal images)`;
}

for (const id of ["sort", "filter-verdict", "filter-review", "filter-defect-type"]) {
  $(id).addEventListener("change", () => { galleryPage = 0; showGallery(); });
}
$("gallery-prev").addEventListener("click", () => { galleryPage -= 1; showGallery(); });
$("gallery-next").addEventListener("click", () => { galleryPage += 1; showGallery(); });
$("heatmap").addEventListener("change", () => { $("overlay").hidden = !$("heatmap").checked; });
$("heatmap-opacity").addEventListener("input", () => { $("overlay").style.opacity = $("heatmap-opacity").value / 100; });
