// Two small canvas charts (no library): a line over time and labelled bars.

const INK = "#1f5fbf";
const GRID = "#d8dde6";
const TEXT = "#333";

function prepare(canvas) {
  // Sharp on high-density screens: draw in device pixels, size in CSS pixels.
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 320;
  const height = canvas.clientHeight || 140;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  return { ctx, width, height };
}

// points: [{t: Date ms, v: number}]
export function lineChart(canvas, points, title) {
  const { ctx, width, height } = prepare(canvas);
  const top = 18, bottom = height - 6, left = 4, right = width - 4;
  const max = Math.max(1, ...points.map((p) => p.v));
  const last = points.length ? points[points.length - 1].v : 0;
  ctx.fillStyle = TEXT;
  ctx.fillText(`${title}: ${Math.round(last).toLocaleString()} (max ${Math.round(max).toLocaleString()})`, left, 12);
  ctx.strokeStyle = GRID;
  ctx.beginPath();
  ctx.moveTo(left, bottom);
  ctx.lineTo(right, bottom);
  ctx.stroke();
  if (points.length < 2) return;
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (right - left);
  const y = (v) => bottom - (v / max) * (bottom - top);
  ctx.strokeStyle = INK;
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
  ctx.stroke();
}

export function barChart(canvas, labels, values, title) {
  const { ctx, width, height } = prepare(canvas);
  const top = 18, bottom = height - 18;
  const max = Math.max(1, ...values);
  const slot = width / Math.max(1, values.length);
  ctx.fillStyle = TEXT;
  ctx.fillText(title, 4, 12);
  values.forEach((v, i) => {
    const h = (v / max) * (bottom - top);
    ctx.fillStyle = INK;
    ctx.fillRect(i * slot + slot * 0.15, bottom - h, slot * 0.7, h);
    ctx.fillStyle = TEXT;
    ctx.fillText(String(labels[i]).slice(0, 10), i * slot + 2, height - 4);
  });
}
