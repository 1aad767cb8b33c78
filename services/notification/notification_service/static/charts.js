// Hand-drawn SVG charts for the dashboard: bars per time bucket with an optional line, plus a text summary
// for screen readers (the SVG is aria-hidden; the caption says what it shows).
"use strict";

window.cbCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 420;
  const H = 180;
  const PAD = { left: 34, right: 8, top: 10, bottom: 20 };

  function node(tag, attrs, text) {
    const el = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  /**
   * Draw into `figure`: buckets = [{label, bar, line?}], bar/line share one y scale.
   * options: {format(v) -> axis text, barName, lineName, caption}
   */
  function draw(figure, buckets, options) {
    const values = buckets.flatMap((b) => [b.bar || 0, b.line || 0]);
    const max = niceMax(Math.max(0, ...values));
    const innerW = W - PAD.left - PAD.right;
    const innerH = H - PAD.top - PAD.bottom;
    const y = (v) => PAD.top + innerH - (v / max) * innerH;
    const slot = innerW / buckets.length;
    const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, "aria-hidden": "true" });
    for (const fraction of [0, 0.5, 1]) {
      const v = max * fraction;
      svg.append(node("line", { class: fraction ? "grid" : "axis", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
      svg.append(node("text", { x: PAD.left - 4, y: y(v) + 3, "text-anchor": "end" }, options.format(v)));
    }
    buckets.forEach((bucket, i) => {
      const x = PAD.left + i * slot;
      const height = innerH - (y(bucket.bar || 0) - PAD.top);
      if (bucket.bar) {
        svg.append(node("rect", { class: "bar", x: x + slot * 0.15, width: slot * 0.7, y: y(bucket.bar), height,
                                  rx: 2 }));
      }
      if (i % 2 === 0 || buckets.length <= 6) {
        svg.append(node("text", { x: x + slot / 2, y: H - 5, "text-anchor": "middle" }, bucket.label));
      }
    });
    if (buckets.some((b) => b.line !== undefined)) {
      const points = buckets.map((b, i) => `${PAD.left + (i + 0.5) * slot},${y(b.line || 0)}`);
      svg.append(node("polyline", { class: "line", points: points.join(" ") }));
      buckets.forEach((b, i) => {
        if (b.line) svg.append(node("circle", { class: "dot", cx: PAD.left + (i + 0.5) * slot, cy: y(b.line), r: 2.5 }));
      });
    }
    const caption = document.createElement("figcaption");
    caption.textContent = options.caption;
    figure.replaceChildren(svg, caption);
  }

  /** Split [now - span, now] into n buckets labelled with their start time ("-55m" … "-5m"). */
  function buckets(now, spanS, n) {
    const size = spanS / n;
    return Array.from({ length: n }, (_, i) => ({
      start: now - spanS + i * size,
      end: now - spanS + (i + 1) * size,
      label: `-${Math.round((spanS - i * size) / 60)}m`,
    }));
  }

  return { draw, buckets };
})();
