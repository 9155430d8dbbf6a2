// Drives Debian's chromium through the web console of a real wua-server,
// for crates/server/tests/console_browser.rs, which starts the server and
// the agents and runs this script twice:
//
//   PHASE=approve  sign in as admin, check the overview chart's counts
//                  against the API's, approve UPDATE_ID for GROUP, make a
//                  read-only token (printed as JSON on stdout), and take a
//                  screenshot of each page;
//   PHASE=verify   (after an agent installed the update) see it installed,
//                  see a request without the CSRF token refused, and see
//                  the read-only account unable to approve.
//
// Environment: CONSOLE_URL, ADMIN_TOKEN, UPDATE_ID, GROUP, SCREENSHOTS (a
// directory), READ_ONLY_TOKEN (verify), COMPUTER_ID (verify).
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("CONSOLE_URL");
const shots = env("SCREENSHOTS");

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shoot(page, name) {
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  check(size > 1000, `the screenshot ${file} is ${size} bytes`);
}

async function signIn(page, token) {
  await page.goto(`${base}/console/sign-in`);
  await page.fill("#token", token);
  await page.press("#token", "Enter");
  await page.waitForURL(`${base}/console/overview`);
}

async function csrfOf(page) {
  return page.getAttribute("form.sign-out input[name=csrf]", "value");
}

async function approvePhase(page) {
  const admin = env("ADMIN_TOKEN");
  const updateId = env("UPDATE_ID");
  const group = env("GROUP");
  await signIn(page, admin);

  // The chart's bars and the API's group report count the same computers.
  const bars = await page.$$eval("svg.chart g.bar", (nodes) =>
    nodes.map((node) => ({
      group: node.dataset.group,
      computers: Number(node.dataset.computers),
      upToDate: Number(node.dataset.upToDate),
    })),
  );
  const answer = await fetch(`${base}/api/v1/reports/groups`, {
    headers: { Authorization: `Bearer ${admin}` },
  });
  check(answer.ok, `the API's group report: ${answer.status}`);
  const api = await answer.json();
  check(api.length > 0 && bars.length === api.length,
    `the chart has ${bars.length} groups, the API ${api.length}`);
  for (const expected of api) {
    const bar = bars.find((bar) => bar.group === expected.group);
    check(bar, `the chart has no bar for ${expected.group}`);
    check(bar.computers === expected.computers && bar.upToDate === expected.upToDate,
      `${expected.group}: chart ${JSON.stringify(bar)}, API ${JSON.stringify(expected)}`);
  }
  check(bars.some((bar) => bar.computers > 0), "the chart counts no computer");
  await shoot(page, "overview");

  // Updates: WUA's criteria find it.
  await page.goto(`${base}/console/updates`);
  await shoot(page, "updates");
  await page.fill("#criteria", "Type='Software'");
  await page.press("#criteria", "Enter");
  await page.waitForSelector(`tr[data-update-id="${updateId}"]`);

  // Approve it for the group, with the keyboard only.
  await page.goto(`${base}/console/updates/${updateId}`);
  await page.selectOption("#approve-group", group);
  await page.selectOption("#approve-action", "install");
  await page.focus("#approve button[type=submit]");
  await page.keyboard.press("Enter");
  await page.waitForURL(/done=approved/);
  const approval = await page.textContent(`tr[data-group="${group}"] td.approval`);
  check(approval.trim().startsWith("install"), `the approval shows ${approval}`);
  await shoot(page, "update");

  await page.goto(`${base}/console/computers`);
  await page.waitForSelector("#computers tbody tr");
  await shoot(page, "computers");
  await page.click("#computers tbody tr a");
  await page.waitForSelector("#computer-updates");
  await shoot(page, "computer");

  await page.goto(`${base}/console/failures`);
  await shoot(page, "failures");

  await page.goto(`${base}/console/rollouts`);
  await page.waitForSelector("main h1");
  await shoot(page, "rollouts");
  await page.goto(`${base}/console/maintenance`);
  await page.waitForSelector("#maintenance-policy");
  await shoot(page, "maintenance");

  // A read-only token for the helpdesk.
  await page.goto(`${base}/console/access`);
  await page.fill("#label", "helpdesk");
  await page.click("text=Make a read-only token");
  const token = (await page.textContent("#new-token")).trim();
  check(/^[0-9a-f]{64}$/.test(token), `a token ${token}`);
  await shoot(page, "access");
  process.stdout.write(JSON.stringify({ readOnlyToken: token }) + "\n");
}

async function verifyPhase(page) {
  const updateId = env("UPDATE_ID");
  const group = env("GROUP");
  const computerId = env("COMPUTER_ID");
  await signIn(page, env("ADMIN_TOKEN"));

  // The agent's install shows: its row says Installed, and the totals.
  await page.goto(`${base}/console/updates/${updateId}?state=Installed`);
  const state = await page.textContent(`tr[data-computer-id="${computerId}"] td.state`);
  check(state.trim() === "Installed", `the computer's state is ${state}`);
  const installed = await page.textContent(
    `tr[data-group="${group}"] td[data-state="Installed"]`);
  check(installed.trim() === "1", `${group} counts ${installed} installed`);
  await shoot(page, "installed");

  // A change without the session's CSRF token is refused, and changes
  // nothing.
  const form = { group: "All Computers", action: "install" };
  const forged = await page.request.post(`${base}/console/updates/${updateId}/approve`,
    { form, maxRedirects: 0 });
  check(forged.status() === 403, `without the CSRF token: ${forged.status()}`);
  const wrong = await page.request.post(`${base}/console/updates/${updateId}/approve`,
    { form: { ...form, csrf: "0".repeat(64) }, maxRedirects: 0 });
  check(wrong.status() === 403, `with a wrong CSRF token: ${wrong.status()}`);
  await page.goto(`${base}/console/updates/${updateId}`);
  const all = await page.textContent('tr[data-group="All Computers"] td.approval');
  check(!all.trim().startsWith("install"), `All Computers' approval became ${all}`);

  await page.click("form.sign-out button");
  await page.waitForURL(`${base}/console/sign-in`);

  // The read-only account sees the pages, not the forms, and its own
  // valid CSRF token does not let it approve.
  await signIn(page, env("READ_ONLY_TOKEN"));
  await page.goto(`${base}/console/updates/${updateId}`);
  check(await page.$("#approve") === null, "a read-only page shows the approve form");
  await shoot(page, "read-only");
  const csrf = await csrfOf(page);
  const refused = await page.request.post(`${base}/console/updates/${updateId}/approve`,
    { form: { ...form, csrf }, maxRedirects: 0 });
  check(refused.status() === 403, `a read-only approval: ${refused.status()}`);
  const access = await page.goto(`${base}/console/access`);
  check(access.status() === 403, `a read-only Access page: ${access.status()}`);
}

(async () => {
  // Debian's chromium, never a downloaded browser. Chromium refuses to run
  // as root with its sandbox (CI runs as root): --no-sandbox.
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    // A phone's screen: the console must be usable there.
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const phase = env("PHASE");
    if (phase === "approve") await approvePhase(page);
    else if (phase === "verify") await verifyPhase(page);
    else throw new Error(`PHASE ${phase}`);
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
