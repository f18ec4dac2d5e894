// Browser tests of the gridlease console against a running devnet: Playwright (playwright-core)
// drives Debian's chromium; every page is checked for real data, scanned with axe-core (no
// serious or critical violation), and saved as a screenshot. Live updates, deep links, the
// search box and keyboard navigation are exercised.
//
// CONSOLE_URL: the console; DEVNET_JSON: the devnet's devnet.json; SCREENSHOTS: where the
// screenshots go; CHROMIUM: the browser (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const BASE = process.env.CONSOLE_URL;
const DEVNET = JSON.parse(readFileSync(process.env.DEVNET_JSON, "utf8"));
const SHOTS = process.env.SCREENSHOTS || "console-screenshots";
mkdirSync(SHOTS, { recursive: true });

const failures = [];
const passed = [];
function check(name, ok, detail = "") {
  if (ok) passed.push(name);
  else failures.push(`${name}${detail ? ": " + detail : ""}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
// axe is injected as an inline script, which the console's CSP forbids: the test context
// bypasses CSP for that alone.
const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));

async function scan(name) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(`axe ${name}: no serious or critical violation`, bad.length === 0,
    bad.map((v) => `${v.id} (${v.impact}) on ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`).join("; "));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function text(selector) {
  return (await page.locator(selector).first().textContent()) || "";
}

async function goto(path) {
  const response = await page.goto(BASE + path, { waitUntil: "load" });
  return response ? response.status() : 0;
}

// --- Market: real GPU models from the devnet's providers, once the console has read them.
// devnet.json says each provider's GPUs as "2x nvidia/rtx4090 at 8 uusdc per GPU-block".
const models = [...new Set(DEVNET.providers.map((p) => (p.gpu.match(/nvidia\/([a-z0-9]+)/i) || [])[1]).filter(Boolean))];
check("devnet.json names the providers' GPU models", models.length >= 1, JSON.stringify(DEVNET.providers));
let marketText = "";
for (let i = 0; i < 60; i++) {
  await goto("/");
  marketText = await text("main");
  if (models.every((m) => marketText.includes(m)) && marketText.includes("cheaper")) break;
  await page.waitForTimeout(1000);
}
check("market: h1", (await text("h1")) === "Market");
const headers = (await page.request.get(BASE + "/")).headers();
check("a strict content security policy", (headers["content-security-policy"] || "").includes("script-src 'self'"), JSON.stringify(headers));
check("market: every devnet GPU model is listed", models.every((m) => marketText.includes(m)), `${models} in ${marketText.slice(0, 400)}`);
check("market: a reference price and a saving", marketText.includes("Reference cloud price") && marketText.includes("cheaper"));
check("market: charts drawn", (await page.locator("svg.chart path").count()) >= 2);
await scan("market");

// --- Keyboard: the first Tab reaches the skip link, which moves focus to the content; Tab
// then walks the navigation, and Enter follows a link.
await page.keyboard.press("Tab");
check("keyboard: skip link first", (await page.evaluate(() => document.activeElement.textContent)) === "Skip to content");
await page.keyboard.press("Enter");
check("keyboard: skip link focuses main", (await page.evaluate(() => document.activeElement.id)) === "main");
await goto("/");
let reached = false;
for (let i = 0; i < 8 && !reached; i++) {
  await page.keyboard.press("Tab");
  reached = (await page.evaluate(() => document.activeElement.textContent)) === "Providers";
}
check("keyboard: Tab reaches the Providers link", reached);
await Promise.all([page.waitForURL("**/providers"), page.keyboard.press("Enter")]);
check("keyboard: Enter follows it", page.url().endsWith("/providers"));

// --- Providers: the list, search and sort, a provider's page by clicking.
await goto("/providers");
const providerRows = await page.locator("main table tbody tr").count();
check("providers: one row per devnet provider", providerRows === DEVNET.providers.length, `${providerRows}`);
await scan("providers");
await page.fill("#pq", models[0]);
await page.selectOption("#sort", "leases");
await Promise.all([page.waitForURL("**/providers?**"), page.click("form.filter button")]);
const found = await text("main [role=status]");
check("providers: search by GPU model", /^[1-9]\d* of \d+ providers match/.test(found), found);
await goto("/providers");
await Promise.all([page.waitForURL("**/providers/grid1**"), page.locator("main table tbody tr a").first().click()]);
const providerPage = await text("main");
check("provider: page by click", (await text("h1")).startsWith("Provider") && providerPage.includes("GPUs in its inventory"), providerPage.slice(0, 300));
check("provider: uptime record", providerPage.includes("Uptime") && providerPage.includes("Failovers"));
check("provider: earnings from the chain's payments", providerPage.includes("Earned (chain payments)"), providerPage.slice(0, 600));
await scan("provider");

// --- Deployments and the demo deployment by deep link: auction, escrow, leases.
await goto("/deployments");
check("deployments: listed", (await page.locator("main table tbody tr").count()) >= 1);
await scan("deployments");
const dseq = DEVNET.demo.dseq;
const status = await goto(`/deployments/${DEVNET.tenant_address}/${dseq}`);
const dep = await text("main");
check("deployment: deep link", status === 200 && (await text("h1")) === `Deployment ${dseq}`, `${status}`);
check("deployment: the auction's winner", dep.includes("winner"), dep.slice(0, 300));
check("deployment: escrow burn rate and time left", dep.includes("Burn rate") && dep.includes("Time left"));
check("deployment: leases with health", dep.includes("Leases of the deployment"));
check("deployment: the auction's reason for its winner", dep.includes("Auction result") && dep.includes("lowest price"), dep.slice(0, 600));
await scan("deployment");
await Promise.all([page.waitForURL("**why=1"), page.getByRole("link", { name: /Ask up to/ }).click()]);
const why = await text("main");
check("deployment: providers asked why they did not bid", why.includes("What providers that did not bid say") || why.includes("Every answering provider bid"), why.slice(-400));
await scan("deployment-why");

// --- Leases: the list, one lease by click.
await goto("/leases");
const leaseRows = await page.locator("main table tbody tr").count();
check("leases: the demo's leases", leaseRows >= 1, `${leaseRows}`);
await scan("leases");
await Promise.all([page.waitForURL("**/leases/grid1**"), page.locator("main table tbody tr a").first().click()]);
const lease = await text("main");
check("lease: page by click", (await text("h1")).startsWith("Lease ") && lease.includes("Health") && lease.includes("What the provider offered"), lease.slice(0, 300));
check("lease: its payment", lease.includes("Payment") && lease.includes("Withdrawn by the provider"), lease.slice(0, 800));
check("lease: its history", lease.includes("Health history") && lease.includes("lease created at"), lease.slice(-600));
await scan("lease");

// --- Chain: a new block appears without reloading the page.
let navigations = 0;
await goto("/blocks");
page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations++; });
const firstHeight = Number(await page.locator("tbody[data-live=blocks] tr td a").first().textContent());
await page.waitForFunction((h) => {
  const a = document.querySelector("tbody[data-live=blocks] tr td a");
  return a && Number(a.textContent) > h;
}, firstHeight, { timeout: 30000 });
const newHeight = Number(await page.locator("tbody[data-live=blocks] tr td a").first().textContent());
check("chain: a live block without reload", newHeight > firstHeight && navigations === 0, `${firstHeight} -> ${newHeight}, ${navigations} navigations`);
check("chain: the header's block follows", Number(await page.locator("#tip").textContent()) >= newHeight);
await scan("blocks");
await Promise.all([page.waitForURL(`**/blocks/${newHeight}`), page.locator(`tbody[data-live=blocks] a[href="/blocks/${newHeight}"]`).first().click()]);
check("block: page by click", (await text("h1")) === `Block ${newHeight}`);
await scan("block");

// --- Search: a dseq, an address, a height; a bad request is a 4xx with a reason.
async function search(q) {
  await goto("/");
  await page.fill("#q", q);
  await Promise.all([page.waitForLoadState("load"), page.press("#q", "Enter")]);
  await page.waitForTimeout(300);
  return page.url();
}
let url = await search(String(dseq));
check("search: a dseq", url.includes(`/deployments/${DEVNET.tenant_address}/${dseq}`) || (await text("main")).includes(`Deployment ${dseq} of`), url);
url = await search(DEVNET.tenant_address);
check("search: an address", url.endsWith(`/accounts/${DEVNET.tenant_address}`), url);
url = await search(DEVNET.providers[0].address);
check("search: a provider's address", url.endsWith(`/providers/${DEVNET.providers[0].address}`), url);
url = await search(String(newHeight));
check("search: a height", url.endsWith(`/blocks/${newHeight}`) || (await text("main")).includes(`Block ${newHeight}`), url);
await scan("account-or-search");
check("no script error in the browser", consoleErrors.length === 0, consoleErrors.join(" | "));
const bad = await goto("/providers/not-an-address");
check("deep link: a bad address is a 400 with a reason", bad === 400 && (await text("main")).includes("is not an address"), `${bad}`);
const missing = await goto(`/blocks/${newHeight + 1000000}`);
check("deep link: a missing block is a 404", missing === 404);
await scan("error");

await browser.close();
console.log(JSON.stringify({ passed: passed.length, failed: failures.length, failures, screenshots: SHOTS }, null, 1));
process.exit(failures.length === 0 ? 0 : 1);
