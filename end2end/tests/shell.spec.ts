import { test, expect, hydrated } from "./fixtures";

const sections = ["Features", "Timeline", "Environments", "Applications", "Search", "Overview"];

test("the overview explains how to connect the sources", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  await expect(page).toHaveTitle("Overview · Landfall");
  await expect(page.getByRole("heading", { level: 1, name: "Overview" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Nothing is connected yet" })).toBeVisible();
  for (const step of ["Connect Argo CD", "Add Git repositories", "Connect Jira"]) {
    await expect(page.getByRole("heading", { name: step })).toBeVisible();
  }
});

test("the shell's links navigate without reloading the page", async ({ page }) => {
  let loads = 0;
  page.on("load", () => loads++);
  await page.goto("/");
  await hydrated(page);
  await page.evaluate(() => ((window as unknown as { landfallMarker: number }).landfallMarker = 42));

  const nav = page.getByRole("navigation", { name: "Main" });
  for (const section of sections) {
    await nav.getByRole("link", { name: section, exact: true }).click();
    await expect(page.getByRole("heading", { level: 1, name: section })).toBeVisible();
    await expect(nav.getByRole("link", { name: section, exact: true })).toHaveAttribute("aria-current", "page");
    await expect(page).toHaveTitle(`${section} · Landfall`);
  }
  await expect(page).toHaveURL(/\/$/);
  const marker = await page.evaluate(() => (window as unknown as { landfallMarker?: number }).landfallMarker);
  expect(marker, "the window survived every navigation").toBe(42);
  expect(loads, "only the first visit loaded a document").toBe(1);
});

test("search runs in place and keeps the query in the address", async ({ page }) => {
  await page.goto("/search");
  await hydrated(page);
  const box = page.getByRole("searchbox");
  await page.evaluate(() => ((window as unknown as { landfallMarker: number }).landfallMarker = 7));
  await box.fill("check out");
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page).toHaveURL(/\/search\?q=check%20out$/);
  await expect(page.getByText("Nothing matches that search.")).toBeVisible();
  await expect(box).toHaveValue("check out");
  const marker = await page.evaluate(() => (window as unknown as { landfallMarker?: number }).landfallMarker);
  expect(marker, "searching did not reload the page").toBe(7);
});

test("a question in the search box gets an answer, or questions to try", async ({ page }) => {
  await page.goto("/search");
  await hydrated(page);
  await page.getByRole("searchbox").fill("Is SHOP-1 deployed in production now?");
  await page.getByRole("button", { name: "Search" }).click();
  const answer = page.getByTestId("answer");
  // The ledger is empty: no environment or feature is known yet, so it says what it can answer.
  const example = answer.getByRole("link", { name: "Which feature was implemented by pull request 432?" });
  await expect(example).toBeVisible();
  await example.click();
  await expect(page).toHaveURL(/\/search\?q=Which%20feature%20was%20implemented%20by%20pull%20request%20432%3F$/);
  await expect(page.getByTestId("answer")).toHaveText("Pull request #432 is not in the ledger.");
});

test.describe("an unknown address", () => {
  // The 404 is the point of this test; Chromium also logs it to the console.
  test.use({ allowedProblems: /^HTTP 404: .*\/nowhere$|^console error: Failed to load resource: .* 404/ });

  test("shows the not-found page inside the shell", async ({ page }) => {
    const response = await page.goto("/nowhere");
    expect(response?.status()).toBe(404);
    await hydrated(page);
    await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
    await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  });
});

test("an application the ledger does not know gets a page that says so", async ({ page }) => {
  await page.goto("/applications/main/nothing-here");
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Application not found" })).toBeVisible();
  await page.getByRole("link", { name: "All applications" }).click();
  await expect(page).toHaveURL(/\/applications$/);
  await expect(page.getByRole("heading", { name: "Applications" })).toBeVisible();
});
