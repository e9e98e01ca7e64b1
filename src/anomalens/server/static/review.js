// Review: an operator's word on the part shown (correct, false alarm, missed; a defect type) sent to
// POST /v1/inspections/{id}/feedback and marked in the gallery; keys for a fast pass (j, k, c, w).

let reviewing = null;  // the index in the batch of the part shown

// The feedback each button gives, from the verdict shown: the service keeps it, the page only words it.
const REVIEWS = {
  correct: (result) => ({ verdict: result.anomalous ? "defective" : "normal", label: "correct" }),
  falseAlarm: () => ({ verdict: "normal", label: "false alarm" }),
  missed: () => ({ verdict: "defective", label: "missed" }),
};

function showReview(index) {
  reviewing = index;
  const result = batch.results[index];
  $("review-false-alarm").disabled = !result.anomalous;  // only an anomalous verdict can be a false alarm
  $("review-missed").disabled = result.anomalous;
  const given = batch.reviews[index];
  show($("review-status"), given ? `Reviewed: ${given.label}.` : "");
  $("defect-type").value = given && given.defect_type ? given.defect_type : "";
}

async function review(kind) {
  if (reviewing === null) return;
  const index = reviewing;
  const result = batch.results[index];
  const { verdict, label } = REVIEWS[kind](result);
  const defectType = $("defect-type").value.trim();
  try {
    const given = await call(`/v1/inspections/${encodeURIComponent(result.inspection_id)}/feedback`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ verdict, source: "page", ...(defectType ? { defect_type: defectType } : {}) }),
    });
    feedbackKept(index, { ...given, label });
  } catch (error) {
    show($("review-status"), `The feedback was not kept: ${error.message}`, true);
  }
}

// The feedback is on record: the part is marked reviewed. Hook: where the service re-decides the verdict from
// a correction (teaching, built elsewhere), its answer to the feedback carries the new verdict to show here.
function feedbackKept(index, given) {
  batch.reviews[index] = given;
  showGallery();
  if (reviewing === index) show($("review-status"), `Reviewed: ${given.label} (kept).`);
}

// The next (step 1) or previous (-1) part in the gallery's order.
function step(by) {
  const order = visibleOrder().filter((i) => batch.results[i].ok);
  if (!order.length) return;
  const at = order.indexOf(reviewing);
  showResult(order[Math.min(Math.max(at + by, 0), order.length - 1)]);
}

$("review-correct").addEventListener("click", () => review("correct"));
$("review-false-alarm").addEventListener("click", () => review("falseAlarm"));
$("review-missed").addEventListener("click", () => review("missed"));

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
  if (typing || event.ctrlKey || event.metaKey || event.altKey || $("review").hidden) return;
  const result = reviewing === null ? null : batch.results[reviewing];
  const actions = {
    j: () => step(1),
    k: () => step(-1),
    c: () => review("correct"),
    w: () => review(result && result.anomalous ? "falseAlarm" : "missed"),
  };
  if (actions[event.key]) {
    event.preventDefault();
    actions[event.key]();
  }
});
