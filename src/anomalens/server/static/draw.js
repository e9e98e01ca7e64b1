// A box drawn on the part's image: press, drag and release (mouse, pen or touch alike: Pointer Events) marks
// where a defect is. Kept in the image's own pixels, it goes with the review (review.js) and is cleared when
// another image is shown.

let drawnBox = null;  // [x0, y0, x1, y1] in the image's own pixels (x1, y1 exclusive), or none drawn
let dragStart = null;  // where the pointer went down, in the image's pixels, while it is down
const LEAST_DRAG = 4;  // CSS pixels either way: a press with less is a click, not a box

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

function showBox() {
  const shown = $("drawn-box");
  shown.hidden = !drawnBox;
  $("clear-box").disabled = !drawnBox;
  if (!drawnBox) return;
  const img = $("original");
  const { dx, dy, scale } = imageFrame();
  const [x0, y0, x1, y1] = drawnBox;
  Object.assign(shown.style, {
    left: `${img.offsetLeft + dx + x0 * scale}px`, top: `${img.offsetTop + dy + y0 * scale}px`,
    width: `${(x1 - x0) * scale}px`, height: `${(y1 - y0) * scale}px`,
  });
}

function clearBox() {
  drawnBox = null;
  dragStart = null;
  showBox();
}

$("original").addEventListener("pointerdown", (event) => {
  if (!$("original").naturalWidth || event.button !== 0) return;
  event.preventDefault();  // no image drag, no text selection
  $("original").setPointerCapture(event.pointerId);  // the drag goes on outside the image, kept inside it
  dragStart = imagePoint(event);
});
$("original").addEventListener("pointermove", (event) => {
  if (!dragStart) return;
  drawnBox = boxOf(dragStart, imagePoint(event));
  showBox();
});
$("original").addEventListener("pointerup", (event) => {
  if (!dragStart) return;
  drawnBox = boxOf(dragStart, imagePoint(event));
  dragStart = null;
  showBox();
});
$("original").addEventListener("pointercancel", clearBox);
$("clear-box").addEventListener("click", clearBox);
window.addEventListener("resize", showBox);  // the image is drawn at another size: the box follows it
