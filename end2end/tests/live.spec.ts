import { test, expect, hydrated } from "./fixtures";
import { argocdPort, argocdToken, livePort } from "../playwright.config";

// This Landfall watches the Argo CD emulator; the tests change Argo CD through its own
// API, as a user of the Argo CD UI or CLI would, and watch the page follow.
const landfall = `http://127.0.0.1:${livePort}`;
const argocd = `http://127.0.0.1:${argocdPort}`;

async function syncInArgoCd(request: import("@playwright/test").APIRequestContext, name: string) {
  const response = await request.post(`${argocd}/api/v1/applications/${name}/sync`, {
    headers: { Authorization: `Bearer ${argocdToken}`, "Content-Type": "application/json" },
    data: {},
  });
  expect(response.status(), await response.text()).toBe(200);
}

test("an application's page follows Argo CD without a reload", async ({ page, request }) => {
  let loads = 0;
  page.on("load", () => loads++);
  await page.goto(`${landfall}/applications/main/shop-api`);
  await hydrated(page);
  await expect(page.getByTestId("live-status")).toHaveText("Live");
  await expect(page.getByTestId("sync-status")).toHaveText("OutOfSync");
  await expect(page.getByText("No deployments recorded yet.")).toBeVisible();

  await syncInArgoCd(request, "shop-api");
  await expect(page.getByTestId("sync-status")).toHaveText("Synced");
  const deployments = page.getByRole("table", { name: "Deployments" });
  await expect(deployments.getByRole("row")).toHaveCount(2);
  await expect(deployments).toContainText("registry.example/shop-api:1.0.0");
  expect(loads, "the page never reloaded").toBe(1);
});

test("the applications list follows Argo CD without a reload", async ({ page, request }) => {
  let loads = 0;
  page.on("load", () => loads++);
  await page.goto(`${landfall}/applications`);
  await hydrated(page);
  await expect(page.getByTestId("live-status")).toHaveText("Live");
  const row = page.getByRole("row").filter({ hasText: "shop-web" });
  await expect(row).toContainText("OutOfSync");

  await syncInArgoCd(request, "shop-web");
  await expect(row).toContainText("Synced");
  await expect(row).not.toContainText("OutOfSync");
  expect(loads, "the page never reloaded").toBe(1);
});

test("the overview lists the Argo CD instance as connected", async ({ page }) => {
  await page.goto(`${landfall}/`);
  await hydrated(page);
  const connection = page.getByTestId("connection").filter({ hasText: "Argo CD main" });
  await expect(connection).toContainText("Connected");
  await expect(page.getByRole("alert")).toHaveCount(0);
});

test("an application is synced and rolled back from its page", async ({ page, request }) => {
  // An application of its own, created through Argo CD's API, so the other tests'
  // applications keep their state.
  const created = await request.post(`${argocd}/api/v1/applications`, {
    headers: { Authorization: `Bearer ${argocdToken}`, "Content-Type": "application/json" },
    data: {
      metadata: { name: "shop-worker", namespace: "argocd", labels: { env: "staging" } },
      spec: {
        project: "default",
        source: { repoURL: "https://git.example/acme/gitops.git", path: "envs/staging/worker", targetRevision: "main" },
        destination: { server: "https://kubernetes.default.svc", namespace: "shop-staging" },
      },
    },
  });
  expect(created.status(), await created.text()).toBe(200);
  // Landfall learns of it through its watch of Argo CD, a moment later; opened before
  // that, the page would rightly say it has no such application.
  await expect
    .poll(async () => (await request.get(`${landfall}/api/v1/applications/main/shop-worker`)).status(), {
      timeout: 10_000,
    })
    .toBe(200);

  await page.goto(`${landfall}/applications/main/shop-worker`);
  await hydrated(page);
  await expect(page.getByTestId("live-status")).toHaveText("Live");
  const actions = page.getByRole("group", { name: "Actions" });
  const outcome = page.getByTestId("action-outcome");
  const deployments = page.getByRole("table", { name: "Deployments" });

  await actions.getByRole("button", { name: "Sync" }).click();
  await expect(outcome).toHaveText("sync of shop-worker started");
  await expect(page.getByTestId("sync-status")).toHaveText("Synced");
  await expect(deployments.getByRole("row")).toHaveCount(2);
  await expect(deployments.getByRole("button", { name: "Roll back here" })).toHaveCount(0);

  await page.getByRole("button", { name: "Hard refresh" }).click();
  await expect(outcome).toHaveText("hard refresh of shop-worker done");
  await page.getByRole("button", { name: "Sync" }).click();
  await expect(deployments.getByRole("row")).toHaveCount(3);

  // The older entry can be returned to, after a confirmation.
  let asked = "";
  page.once("dialog", (dialog) => {
    asked = dialog.message();
    void dialog.accept();
  });
  await deployments.getByRole("button", { name: "Roll back here" }).click();
  await expect(outcome).toHaveText(/^rollback of shop-worker to history 0 started/);
  expect(asked).toContain("Roll shop-worker back to history 0");
  await expect(deployments.getByRole("row")).toHaveCount(4);
});
