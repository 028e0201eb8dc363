import { chromium } from "playwright-chromium";
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
page.on("console", (m) => console.log("console:", m.text())); page.on("response", (r) => { if (r.status() >= 400) console.log("HTTP", r.status(), r.url()); });
await page.goto(process.argv[2], { waitUntil: "networkidle" });
await page.waitForTimeout(1000);
await page.screenshot({ path: process.argv[3] });
console.log(await page.evaluate(() => document.querySelector(".slidev-page-1")?.innerHTML.slice(0, 1500)));
await browser.close();
