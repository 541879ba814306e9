import { defineConfig } from "@playwright/test";

// The release build, started fresh on its own port with an empty data directory.
// `.ci/test` builds it (`cargo leptos build --release`) before running these tests.
const port = Number(process.env.LANDFALL_E2E_PORT ?? 3317);
const baseURL = `http://127.0.0.1:${port}`;
// A second Landfall watching the Argo CD emulator (built by `cargo build`, as `.ci/test`
// does before these tests): the live-update tests use it, the first one stays empty.
// The emulator's port is also in live.toml.
export const argocdPort = 3318;
export const livePort = Number(process.env.LANDFALL_E2E_LIVE_PORT ?? 3319);
export const argocdToken = "e2e.emulator.token";

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      // Debian's Chromium: Playwright cannot download browsers on these machines.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: [
    {
      command:
        `rm -rf ../target/e2e-data && ../target/release/landfall serve --listen 127.0.0.1:${port} ` +
        `--data-dir ../target/e2e-data --site-root ../target/site`,
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      command: `../target/debug/argocd-emulator --listen 127.0.0.1:${argocdPort} --token ${argocdToken}`,
      url: `http://127.0.0.1:${argocdPort}/api/version`,
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: "pipe",
      stderr: "pipe",
    },
    {
      command:
        `rm -rf ../target/e2e-live && ../target/release/landfall serve --config live.toml ` +
        `--listen 127.0.0.1:${livePort} --data-dir ../target/e2e-live --site-root ../target/site`,
      url: `http://127.0.0.1:${livePort}/healthz`,
      env: { E2E_ARGOCD_TOKEN: argocdToken },
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "pipe",
      stderr: "pipe",
    },
  ],
});
