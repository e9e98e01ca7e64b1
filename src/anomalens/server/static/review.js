// Review: an operator's word on the part shown (correct, false alarm, missed; a defect type; a box or a mask
// drawn on the image, draw.js) sent to POST /v1/inspections/{id}/feedback, which teaches the stored model that made the
// inspection and decides the part again; marked in the gallery; keys for a fast pass (j, k, c, w).

let reviewing = null;  // the index in the batch of the part shown

// The feedback each button gives, from the verdict shown: the service keeps it, the page only words it. A
// box marks a defect: it goes with a missed one and with a defect confirmed.
const REVIEWS = {
  correct: (result) => {
    const anomalous = verdictOf(result) === "anomalous";
    return { verdict: anomalous ? "defective" : "normal", label: "correct", boxed: anomalous };
  },
  falseAlarm: () => ({ verdict: "normal", label: "false alarm", boxed: false }),
  missed: () => ({ verdict: "defective", label: "missed", boxed: true }),
};

function showReview(index) {
  reviewing = index;
  const anomalous = verdictOf(batch.results[index]) === "anomalous";
  $("review-false-alarm").disabled = !anomalous;  // only an anomalous verdict can be a false alarm
  $("review-missed").disabled = anomalous;
  const given = batch.reviews[index];
  showKept(given || null);
  $("defect-type").value = given && given.defect_type ? given.defect_type : "";
}

async function review(kind) {
  if (reviewing === null) return;
  const index = reviewing;
  const result = batch.results[index];
  const { verdict, label, boxed } = REVIEWS[kind](result);
  const defectType = $("defect-type").value.trim();
  const box = boxed ? drawnBox : null;
  const mask = boxed ? drawnMask() : null;
  show($("review-status"), "Keeping the feedback and teaching the model…");
  try {
    const given = await call(`/v1/inspections/${encodeURIComponent(result.inspection_id)}/feedback`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        verdict, source: "page", ...(defectType ? { defect_type: defectType } : {}), ...(box ? { box } : {}),
        ...(mask ? { mask_png: mask } : {}),
      }),
    });
    feedbackKept(index, { ...given, label });
  } catch (error) {
    if (reviewing === index) show($("review-status"), `The feedback was not kept: ${error.message}`, true);
  }
}

// The feedback is on record: the part is marked reviewed, and where it taught the model the part's verdict is
// the taught version's (kept beside the first one); the model list shows the new version.
function feedbackKept(index, given) {
  batch.reviews[index] = given;
  const lesson = given.lesson;
  if (lesson && lesson.reinspected) batch.results[index].redecided = lesson.reinspected;
  showGallery();
  if (reviewing === index) {  // the verdict, and the score among the normal ones, as the taught model decides
    showVerdict(batch.results[index]);
    drawDistribution(decidedOf(batch.results[index]).decision);
    showReview(index);
  }
  if (lesson && lesson.taught) loadModels($("model").value);
}

// What became of the feedback `given` (none: the status is emptied): kept, with its box; taught or why not;
// the lesson's flags as warnings.
function showKept(given) {
  const flags = given && given.lesson && given.lesson.taught ? given.lesson.taught.flags : [];
  const warnings = flags.map((flag) => Object.assign(document.createElement("li"), { textContent: flag }));
  $("lesson-flags").replaceChildren(...warnings);
  if (!given) return show($("review-status"), "");
  const [x0, y0, x1, y1] = given.box || [];
  const kept = `Reviewed: ${given.label}. Kept` + (given.mask_path ? " with the mask painted"
    : given.box ? ` with the box (${x0}, ${y0})–(${x1}, ${y1})` : "");
  const { taught, reinspected, not_taught: notTaught } = given.lesson || {};
  if (!taught) return show($("review-status"), kept + (notTaught ? `; the model was not taught: ${notTaught}` : "."));
  const decided = reinspected ? ` — this part is now decided ${reinspected.anomalous ? "anomalous" : "normal"} ` +
    `(p ${reinspected.probability.toFixed(2)})` : "";
  show($("review-status"), `${kept}. Taught: model ${taught.model_id} is now version ${taught.version}${decided}.`);
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
    w: () => review(result && verdictOf(result) === "anomalous" ? "falseAlarm" : "missed"),
  };
  if (actions[event.key]) {
    event.preventDefault();
    actions[event.key]();
  }
});
