// Times the console's pages in Debian's chromium (Playwright): for each page, the median over
// RUNS loads of the time to first byte, to first contentful paint (first render) and to the
// load event, and the size of the page's data (the HTML document; the stylesheet and the
// script are the same small files on every page and cached). Prints a Markdown table.
//
// CONSOLE_URL: the console; RUNS: loads per page (default 5); CHROMIUM: the browser;
// SCREENSHOTS: a folder to save each page's first screen in (optional).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

if (process.env.SCREENSHOTS) mkdirSync(process.env.SCREENSHOTS, { recursive: true });

const BASE = process.env.CONSOLE_URL;
const RUNS = Number(process.env.RUNS || 5);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

// Deep links found on the list pages, so each kind of page is measured on real objects.
async function firstLink(path, prefix) {
  await page.goto(BASE + path);
  return page.evaluate((p) => {
    const a = [...document.querySelectorAll("main a")].find((x) => x.getAttribute("href").startsWith(p));
    return a ? a.getAttribute("href") : null;
  }, prefix);
}
const provider = await firstLink("/providers?sort=leases", "/providers/grid1");
const deployment = await firstLink("/deployments", "/deployments/grid1");
const lease = await firstLink("/leases?state=active", "/leases/grid1");
const block = await firstLink("/blocks", "/blocks/");
const pages = [
  ["market", "/"],
  ["providers", "/providers"],
  ["providers, sorted", "/providers?sort=leases"],
  ["providers, searched", "/providers?q=h100"],
  ["provider", provider],
  ["deployments", "/deployments"],
  ["deployment", deployment],
  ["leases", "/leases"],
  ["lease", lease],
  ["blocks", "/blocks"],
  ["block", block],
  // EXTRA: more `name=path` pages, comma-separated (the bench adds the busiest block).
  ...(process.env.EXTRA || "").split(",").filter(Boolean).map((x) => {
    const at = x.indexOf("=");
    return [x.slice(0, at), x.slice(at + 1)];
  }),
].filter(([, p]) => p);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const rows = [];
for (const [name, path] of pages) {
  const ttfb = [], fcp = [], load = [];
  let bytes = 0, rowsShown = 0, status = 0;
  for (let i = 0; i < RUNS; i++) {
    const response = await page.goto(BASE + path, { waitUntil: "load" });
    status = response.status();
    const t = await page.evaluate(async () => {
      const nav = performance.getEntriesByType("navigation")[0];
      // The paint entry may come after the load event: wait for it (3 s at most).
      const fcp = await new Promise((resolve) => {
        const seen = performance.getEntriesByName("first-contentful-paint")[0];
        if (seen) return resolve(seen.startTime);
        new PerformanceObserver((list) => {
          const e = list.getEntriesByName("first-contentful-paint")[0];
          if (e) resolve(e.startTime);
        }).observe({ type: "paint", buffered: true });
        setTimeout(() => resolve(NaN), 3000);
      });
      return {
        ttfb: nav.responseStart - nav.startTime,
        fcp,
        load: nav.loadEventEnd - nav.startTime,
        bytes: nav.encodedBodySize,
        rows: document.querySelectorAll("main table tbody tr").length,
      };
    });
    ttfb.push(t.ttfb); fcp.push(t.fcp); load.push(t.load);
    bytes = t.bytes; rowsShown = t.rows;
  }
  if (process.env.SCREENSHOTS) {
    await page.screenshot({ path: `${process.env.SCREENSHOTS}/scale-${name.replace(/[^a-z0-9]+/gi, "-")}.png`, fullPage: false });
  }
  rows.push({ name, path, status, ttfb: median(ttfb), fcp: median(fcp), load: median(load), bytes, rows: rowsShown });
}
await browser.close();

console.log(`| page | status | first byte (ms) | first render (ms) | load (ms) | HTML (KiB) | table rows |`);
console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
for (const r of rows) {
  console.log(`| ${r.name} | ${r.status} | ${r.ttfb.toFixed(1)} | ${r.fcp.toFixed(1)} | ${r.load.toFixed(1)} | ${(r.bytes / 1024).toFixed(1)} | ${r.rows} |`);
}
if (rows.some((r) => r.status !== 200)) process.exit(1);
