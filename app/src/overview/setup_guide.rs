use leptos::prelude::*;

/// The first thing a new installation shows: the three sources to connect, each with
/// the configuration it needs. Credentials are always referenced by environment
/// variable, never written into the file.
#[component]
pub fn SetupGuide() -> impl IntoView {
    view! {
        <div class="setup" aria-labelledby="setup-title">
            <h2 id="setup-title">"Nothing is connected yet"</h2>
            <p>
                "Landfall builds its ledger from Argo CD, your Git repositories and Jira. "
                "Add them to "<code>"landfall.toml"</code>" (or pass "<code>"--config FILE"</code>
                ") and restart "<code>"landfall serve"</code>"."
            </p>
            <ol class="setup-steps">
                <li>
                    <h3>"Connect Argo CD"</h3>
                    <p>"Deployments, sync status and health come from Argo CD's API. Use a read-only token for a start."</p>
                    <pre><code>{ARGOCD}</code></pre>
                </li>
                <li>
                    <h3>"Add Git repositories"</h3>
                    <p>"Application repositories give commits, pull requests and features; the GitOps repository tells who changed each environment."</p>
                    <pre><code>{GIT}</code></pre>
                </li>
                <li>
                    <h3>"Connect Jira"</h3>
                    <p>"Issue keys found in commits and pull requests become features with their summary and status."</p>
                    <pre><code>{JIRA}</code></pre>
                </li>
            </ol>
            <p class="notice notice-info">
                "Git repositories are read today, by "<code>"landfall ingest"</code>" and in the background by "
                <code>"landfall serve"</code>". The Argo CD and Jira connectors are in development: until they "
                "land, Landfall refuses their sections as unknown settings. The README's “Connecting your tools” "
                "section tracks them."
            </p>
        </div>
    }
}

const ARGOCD: &str = r#"[[argocd]]
name = "main"
url = "https://argocd.example.com"
token_env = "ARGOCD_TOKEN""#;

const GIT: &str = r#"[[repository]]
name = "shop-api"
url = "https://github.com/acme/shop-api.git"
kind = "source"
token_env = "SHOP_API_TOKEN"

[[repository]]
name = "gitops"
url = "/srv/git/gitops"
kind = "manifests"

[features]
projects = ["SHOP", "PAY"]"#;

const JIRA: &str = r#"[jira]
url = "https://acme.atlassian.net"
flavor = "cloud"
email = "bot@acme.com"
token_env = "JIRA_TOKEN""#;
