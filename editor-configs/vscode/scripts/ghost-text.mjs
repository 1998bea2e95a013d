// Drives a running code-server (the real VS Code workbench in a browser) with headless
// Chromium: opens inventory/report.py of examples/workspace, types a function header, waits
// for Repoformer's ghost text, reads the status bar and the "Repoformer Decisions" output
// channel, takes a screenshot, accepts the suggestion with Tab and checks the buffer.
// Started by scripts/code-server-test.sh (which sets everything up); exits non-zero on failure.
//
//   node ghost-text.mjs ghost URL FOLDER SCREENSHOT EXPECTED_TEXT
//   node ghost-text.mjs missing URL FOLDER SCREENSHOT      (server.command not found)
//   node ghost-text.mjs model-error URL FOLDER SCREENSHOT  (the model fails to load)
import puppeteer from "puppeteer-core";

const [scenario, url, folder, screenshot, expected = ""] = process.argv.slice(2);
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const step = (what) => console.log(`[ghost-text] ${what}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failed = false;
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,900",
  ],
  defaultViewport: { width: 1400, height: 900 },
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.log(`[page error] ${e.message}`));
  step(`open ${url}/?folder=${folder}`);
  await page.goto(`${url}/?folder=${encodeURIComponent(folder)}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
  await sleep(3000);

  const palette = async (command) => {
    await page.keyboard.press("F1");
    await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: 10000 });
    await page.keyboard.type(command);
    await sleep(700);
    await page.keyboard.press("Enter");
    await sleep(1000);
  };

  step("open inventory/report.py");
  await page.keyboard.down("Control");
  await page.keyboard.press("p");
  await page.keyboard.up("Control");
  await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: 10000 });
  await page.keyboard.type("report.py");
  await sleep(1500);
  await page.keyboard.press("Enter");
  await page.waitForSelector(".monaco-editor .view-lines", { timeout: 20000 });
  await sleep(2000);

  step("wait for the status bar item");
  // The Repoformer item's text, its codicons and its hover text (aria-label).
  const statusText = async () =>
    page.$$eval(".statusbar-item", (items) =>
      items
        .filter((i) => (i.textContent ?? "").includes("Repoformer"))
        .map((i) => {
          const icons = [...i.querySelectorAll(".codicon")].map((c) =>
            [...c.classList].filter((k) => k.startsWith("codicon-")).join(" "),
          );
          return `${i.textContent?.trim()} [${icons.join(" ")}]`;
        })
        .join(" | "),
    );
  const notifications = async () =>
    page.$$eval(".notifications-toasts .notification-list-item-message", (els) =>
      els.map((e) => e.textContent ?? "").join("\n"),
    );
  for (let i = 0; i < 60 && !(await statusText()).includes("Repoformer:"); i++) {
    await sleep(500);
  }
  step(`status bar: ${await statusText()}`);

  let seen = "";
  if (scenario === "model-error") {
    for (let i = 0; i < 30 && !seen.includes("native library failed"); i++) {
      await sleep(500);
      seen = await notifications();
    }
  }

  if (scenario === "missing") {
    let shown = "";
    for (let i = 0; i < 30 && !shown.includes("was not found"); i++) {
      await sleep(500);
      shown = await notifications();
    }
    const status = await statusText();
    step(`notification: ${shown}`);
    step(`status bar: ${status}`);
    await page.screenshot({ path: screenshot });
    if (!shown.includes("was not found") || !shown.includes("pip install repoformer-lsp")) {
      console.log("FAIL: no error notification with the fix");
      failed = true;
    }
    if (!status.includes("not running") || status.includes("selective")) {
      console.log("FAIL: the status bar does not say the server is not running");
      failed = true;
    }
    throw "done";
  }

  step("show the decision log");
  await palette(">Repoformer: Show Decision Log".slice(1));
  await sleep(1000);

  step("type at the end of the file");
  await page.click(".monaco-editor .view-lines");
  await page.keyboard.down("Control");
  await page.keyboard.press("End");
  await page.keyboard.up("Control");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");
  await page.keyboard.type("def order_total(items):", { delay: 40 });
  await page.keyboard.press("Enter");
  await sleep(300);
  await page.keyboard.press("Escape"); // close a suggest widget, if any
  // Ask explicitly too (Alt+\ is "Trigger Inline Suggestion"), in case typing did not.
  let ghost = "";
  for (let i = 0; i < 40 && !ghost; i++) {
    await sleep(500);
    ghost = await page.$$eval(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text", (els) =>
      els.map((e) => e.textContent ?? "").join(""),
    );
    if (!ghost && i === 10) {
      await palette("Trigger Inline Suggestion");
    }
  }
  step(`ghost text: ${JSON.stringify(ghost)}`);
  await sleep(1500); // the decision line is written right after the answer
  const output = await page.$$eval(".part.panel .view-lines", (els) => els.map((e) => e.innerText).join("\n"));
  step(`Repoformer Decisions channel:\n${output}`);
  step(`status bar: ${await statusText()}`);
  await page.screenshot({ path: screenshot });
  step(`screenshot: ${screenshot}`);

  if (scenario === "model-error") {
    const status = await statusText();
    step(`notification: ${seen}`);
    if (!status.includes("codicon-error") || !seen.includes("native library failed")) {
      console.log("FAIL: the model error is not in the status bar or a notification");
      failed = true;
    }
    if (ghost) {
      console.log("FAIL: ghost text without a model");
      failed = true;
    }
    throw "done";
  }

  step("accept with Tab");
  await page.keyboard.press("Tab");
  await sleep(800);
  const buffer = await page.$eval(".monaco-editor .view-lines", (e) => e.innerText);
  const accepted = buffer.replace(/\u00a0/g, " ").includes(expected);
  step(`buffer has ${JSON.stringify(expected)}: ${accepted}`);

  if (!ghost.replace(/\u00a0/g, " ").includes(expected.slice(0, 10))) {
    console.log("FAIL: no ghost text with the expected completion");
    failed = true;
  }
  if (!/mode=selective/.test(output)) {
    console.log("FAIL: no decision record in the Repoformer Decisions channel");
    failed = true;
  }
  if (!accepted) {
    console.log("FAIL: Tab did not insert the completion");
    failed = true;
  }
} catch (error) {
  if (error !== "done") {
    console.log(`FAIL: ${error?.stack ?? error}`);
    failed = true;
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
