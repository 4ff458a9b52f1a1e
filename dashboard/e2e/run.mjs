// End-to-end run of the dashboard against a running `sentinel serve` (it starts nothing).
//
// Env: SENTINEL_URL (API + dashboard), DASHBOARD_URL (optional, defaults to SENTINEL_URL),
//      VIEWER_TOKEN, APPROVER_TOKEN, and either INCIDENT_ID (an incident awaiting approval)
//      or INGEST_TOKEN + ALERT_JSON (an Alertmanager webhook body, posted once the viewer
//      watches the list, to see the incident arrive live),
//      ARTIFACTS_DIR (optional, defaults to <repo>/test-artifacts), CHROMIUM (optional).
// Signs in as a viewer (phone width: the list, the incident with the approval panel
// disabled), then as an approver (laptop width: the approvals page, approve with a
// comment, wait until the execution appears in the timeline and the incident settles).
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const need = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`e2e: missing env ${k}`);
    process.exit(2);
  }
  return v;
};
const API = need("SENTINEL_URL").replace(/\/$/, "");
const UI = (process.env.DASHBOARD_URL || API).replace(/\/$/, "");
const VIEWER = need("VIEWER_TOKEN");
const APPROVER = need("APPROVER_TOKEN");
let INCIDENT = process.env.INCIDENT_ID || null;
if (!INCIDENT) {
  need("INGEST_TOKEN");
  need("ALERT_JSON");
}
const OUT = resolve(process.env.ARTIFACTS_DIR || join(here, "..", "..", "test-artifacts"));
const SETTLED = ["CLOSED", "ESCALATED"];
mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--headless"],
});
const pageErrors = [];
const shots = [];
const step = (s) => console.log(`e2e: ${s}`);

async function newPage(width, height) {
  const ctx = await browser.newContext({ viewport: { width, height } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && console.log(`browser console: ${m.text()}`));
  return page;
}

async function signIn(page, token) {
  await page.goto(`${UI}/`);
  await page.locator('input[name="token"]').fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Incidents" }).waitFor();
}

async function noSideScroll(page, what) {
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (sw > w + 1) throw new Error(`${what} scrolls sideways at ${w}px (content ${sw}px wide)`);
}

async function shot(page, name) {
  const p = join(OUT, name);
  await page.screenshot({ path: p, fullPage: true });
  shots.push(p);
  step(`screenshot ${p}`);
}

let failed = null;
let current = null;
try {
  // ---- viewer at phone width
  const viewer = (current = await newPage(375, 812));
  step("viewer signs in");
  await signIn(viewer, VIEWER);
  if (!INCIDENT) {
    await viewer.getByTestId("incident-table").or(viewer.getByText("No incidents.")).first().waitFor();
    step("posting the alert; watching the list");
    const r = await fetch(`${API}/api/v1/alerts/alertmanager`, {
      method: "POST",
      headers: { Authorization: `Bearer ${process.env.INGEST_TOKEN}`, "Content-Type": "application/json" },
      body: process.env.ALERT_JSON,
    });
    if (r.status !== 202) throw new Error(`alert post: ${r.status} ${await r.text()}`);
    INCIDENT = (await r.json()).incident_ids[0];
  }
  await viewer.locator(`a[href="/incidents/${INCIDENT}"]`).waitFor();
  step(`incident ${INCIDENT} arrived in the list`);
  const role = await viewer.getByTestId("role").textContent();
  if (!role.includes("viewer")) throw new Error(`viewer's role shown as ${role}`);
  await noSideScroll(viewer, "the incident list");
  await shot(viewer, "incidents-phone.png");
  await viewer.locator(`a[href="/incidents/${INCIDENT}"]`).click();
  await viewer.getByTestId("approval-panel").waitFor({ timeout: 90_000 });
  const reason = await viewer.getByTestId("disabled-reason").textContent();
  if (!reason.includes("may not decide")) throw new Error(`viewer panel not disabled: ${reason}`);
  if (!(await viewer.getByRole("button", { name: "Approve" }).isDisabled()))
    throw new Error("Approve is enabled for a viewer");
  await viewer.getByRole("heading", { name: "Root cause", exact: true }).first().waitFor();
  step(`causal chain nodes drawn: ${await viewer.getByTestId("chain-node").count()}`);
  await viewer.getByTestId("postmortem").locator("h1").first().waitFor();
  await noSideScroll(viewer, "the incident page");
  await shot(viewer, "incident-viewer-phone.png");

  // ---- approver at laptop width
  const appr = (current = await newPage(1366, 900));
  step("approver signs in");
  await signIn(appr, APPROVER);
  await appr.getByRole("link", { name: "Approvals" }).click();
  await appr.getByRole("heading", { name: "Pending approvals" }).waitFor();
  const card = appr.getByTestId("pending-approval").filter({ hasText: INCIDENT });
  await card.waitFor({ timeout: 90_000 });
  await shot(appr, "approvals.png");
  await card.getByRole("link").first().click();
  await appr.getByTestId("incident-status").waitFor();
  const panel = appr.getByTestId("approval-panel");
  await panel.getByRole("textbox").fill("e2e: roll it back");
  step("approver approves");
  await panel.getByRole("button", { name: "Approve" }).click();
  await appr.getByText(/Decision recorded: approved/).waitFor();

  step("waiting for the execution and a settled status");
  await appr.getByTestId("execution-result").first().waitFor({ timeout: 90_000 });
  await appr.waitForFunction(
    (settled) => settled.includes(document.querySelector('[data-testid="incident-status"]')?.textContent ?? ""),
    SETTLED,
    { timeout: 90_000 },
  );
  const status = await appr.getByTestId("incident-status").textContent();
  const tl = await appr.getByTestId("timeline").textContent();
  if (!tl.includes("SCRIPT_EXEC") || !tl.includes("APPROVAL")) throw new Error("timeline lacks the approval/execution");
  step(`incident ${INCIDENT} is ${status}`);
  await appr.getByTestId("postmortem").locator("h1").first().waitFor();
  await shot(appr, "incident.png");

  step("audit view");
  await appr.getByRole("link", { name: "audit" }).click();
  await appr.getByTestId("audit-verify").getByText(/chain intact|chain broken/).waitFor();
  const verify = await appr.getByTestId("audit-verify").textContent();
  await shot(appr, "audit.png");
  if (!verify.includes("chain intact")) throw new Error(`audit chain: ${verify}`);
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(" | ")}`);
} catch (e) {
  failed = e;
  console.error(`e2e: FAILED: ${e?.stack ?? e}`);
  if (current) await current.screenshot({ path: join(OUT, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ok: !failed, incident_id: INCIDENT, screenshots: shots }));
process.exit(failed ? 1 : 0);
