// A box drawn on the part's image, or a mask painted on it with a brush: press, drag and release (mouse, pen
// or touch alike: Pointer Events) marks where a defect is. Kept in the image's own pixels, it goes with the
// review (review.js: the box as a box, the mask as a PNG the image's size) and is cleared when another image
// is shown.

let drawnBox = null;  // [x0, y0, x1, y1] in the image's own pixels (x1, y1 exclusive), or none drawn
let dragStart = null;  // where the pointer went down, in the image's pixels, while it is down
const LEAST_DRAG = 4;  // CSS pixels either way: a press with less is a click, not a box
let painted = false;  // the brush has marked the mask since it was last cleared
let lastPaint = null;  // where the brush was, in the image's pixels, while it is down

const brushing = () => document.querySelector("input[name=draw-tool]:checked").value === "brush";

// Where the picture lies inside its element, which letterboxes it (object-fit: contain): its offset from the
// element's corner and its scale, CSS pixels per image pixel.
function imageFrame() {
  const img = $("original");
  const scale = Math.min(img.clientWidth / img.naturalWidth, img.clientHeight / img.naturalHeight);
  const dx = (img.clientWidth - img.naturalWidth * scale) / 2;
  return { dx, dy: (img.clientHeight - img.naturalHeight * scale) / 2, scale };
}

// The pointer's place in the image's pixels, kept inside the image.
function imagePoint(event) {
  const img = $("original");
  const rect = img.getBoundingClientRect();
  const { dx, dy, scale } = imageFrame();
  const inside = (value, size) => Math.min(Math.max(value, 0), size);
  return [inside((event.clientX - rect.left - dx) / scale, img.naturalWidth),
    inside((event.clientY - rect.top - dy) / scale, img.naturalHeight)];
}

// The whole pixels the drag from `a` to `b` covers; none where it is too short to be a box.
function boxOf(a, b) {
  const { scale } = imageFrame();
  if (Math.abs(b[0] - a[0]) * scale < LEAST_DRAG || Math.abs(b[1] - a[1]) * scale < LEAST_DRAG) return null;
  return [Math.floor(Math.min(a[0], b[0])), Math.floor(Math.min(a[1], b[1])),
    Math.ceil(Math.max(a[0], b[0])), Math.ceil(Math.max(a[1], b[1]))];
}

// Lays `element` over the image's picture (inside the letterbox), from its pixels `box`.
function placeOver(element, [x0, y0, x1, y1]) {
  const img = $("original");
  const { dx, dy, scale } = imageFrame();
  Object.assign(element.style, {
    left: `${img.offsetLeft + dx + x0 * scale}px`, top: `${img.offsetTop + dy + y0 * scale}px`,
    width: `${(x1 - x0) * scale}px`, height: `${(y1 - y0) * scale}px`,
  });
}

function showBox() {
  $("drawn-box").hidden = !drawnBox;
  $("drawn-mask").hidden = !painted;
  $("clear-box").disabled = !drawnBox && !painted;
  if (drawnBox) placeOver($("drawn-box"), drawnBox);
  if (painted) placeOver($("drawn-mask"), [0, 0, $("original").naturalWidth, $("original").naturalHeight]);
}

// The brush's stroke from where it was to `point`, painted into the mask at the image's own pixels.
function paint(point) {
  const mask = $("drawn-mask");
  const img = $("original");
  if (!painted) [mask.width, mask.height] = [img.naturalWidth, img.naturalHeight];  // emptied as well
  const context = mask.getContext("2d");
  Object.assign(context, { strokeStyle: "#ffb300", lineCap: "round", lineWidth: Number($("brush-size").value) });
  context.beginPath();
  context.moveTo(...(lastPaint || point));
  context.lineTo(point[0] + (lastPaint ? 0 : 0.01), point[1]);  // a press alone leaves a dot
  context.stroke();
  lastPaint = point;
  painted = true;
  showBox();
}

// The painted mask as a PNG data URL the image's size (none painted: null).
function drawnMask() {
  return painted ? $("drawn-mask").toDataURL("image/png") : null;
}

function clearDrawing() {
  drawnBox = null;
  dragStart = null;
  painted = false;
  lastPaint = null;
  showBox();
}

$("original").addEventListener("pointerdown", (event) => {
  if (!$("original").naturalWidth || event.button !== 0) return;
  event.preventDefault();  // no image drag, no text selection
  $("original").setPointerCapture(event.pointerId);  // the drag goes on outside the image, kept inside it
  if (brushing()) return paint(imagePoint(event));
  dragStart = imagePoint(event);
});
$("original").addEventListener("pointermove", (event) => {
  if (lastPaint) return paint(imagePoint(event));
  if (!dragStart) return;
  drawnBox = boxOf(dragStart, imagePoint(event));
  showBox();
});
$("original").addEventListener("pointerup", (event) => {
  lastPaint = null;
  if (!dragStart) return;
  drawnBox = boxOf(dragStart, imagePoint(event));
  dragStart = null;
  showBox();
});
$("original").addEventListener("pointercancel", clearDrawing);
$("clear-box").addEventListener("click", clearDrawing);

// The keyboard's box, for who draws without a pointer: with the image focused, arrow keys move a box (one
// started at the centre, an eighth of the image a side), shift + arrow keys widen or narrow it, Escape clears it.
function keyedBox(key, resize) {
  const [width, height] = [$("original").naturalWidth, $("original").naturalHeight];
  const step = Math.max(1, Math.round(Math.min(width, height) / 32));
  const side = Math.max(2, Math.round(Math.min(width, height) / 8));
  const box = drawnBox || [(width - side) >> 1, (height - side) >> 1, (width + side) >> 1, (height + side) >> 1];
  const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
  const [x0, y0] = resize ? [box[0], box[1]] : [box[0] + dx, box[1] + dy];
  const [x1, y1] = [box[2] + dx, box[3] + dy];
  const within = (v, low, high) => Math.min(Math.max(v, low), high);
  const left = within(x0, 0, width - 1), top = within(y0, 0, height - 1);
  return [left, top, within(x1, left + 1, width), within(y1, top + 1, height)];
}
$("original").addEventListener("keydown", (event) => {
  if (!$("original").naturalWidth) return;
  if (event.key === "Escape") return clearDrawing();
  if (!event.key.startsWith("Arrow")) return;
  event.preventDefault();  // the page does not scroll
  drawnBox = keyedBox(event.key, event.shiftKey);
  showBox();
});
window.addEventListener("resize", showBox);  // the image is drawn at another size: the drawing follows it
