import { test as base, expect, type Page } from "@playwright/test";

/**
 * Fails a test on any console error, uncaught exception, failed request or HTTP error,
 * except those a test declares it expects with `test.use({ allowedProblems: /.../ })`.
 */
export const test = base.extend<{ problems: string[]; allowedProblems: RegExp }>({
  // Matches nothing unless a test says otherwise.
  allowedProblems: [/$^/, { option: true }],
  problems: [
    async ({ page, allowedProblems }, use) => {
      const problems: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`console error: ${message.text()}`);
      });
      page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
      page.on("requestfailed", (request) =>
        problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`),
      );
      page.on("response", (response) => {
        if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
      });
      await use(problems);
      const unexpected = problems.filter((problem) => !allowedProblems.test(problem));
      expect(unexpected, "the page had errors").toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

/** Waits until the wasm bundle has hydrated the server-rendered page. */
export async function hydrated(page: Page) {
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
}
