//! Small cells shared by the tables of several pages.

use leptos::prelude::*;

use crate::format::utc_minute;

/// A health or sync status as a coloured pill; unknown values render neutral.
#[component]
pub fn StatusPill(status: Option<String>) -> impl IntoView {
    let status = status.unwrap_or_else(|| "Unknown".to_string());
    let tone = match status.as_str() {
        "Healthy" | "Synced" | "Succeeded" | "Done" => "good",
        "Progressing" | "Running" | "Suspended" | "In Progress" => "busy",
        "Degraded" | "OutOfSync" | "Failed" | "Error" | "Missing" => "bad",
        _ => "neutral",
    };
    view! { <span class=format!("pill pill-{tone}")>{status}</span> }
}

#[component]
pub fn Time(epoch_ms: Option<i64>) -> impl IntoView {
    match epoch_ms {
        Some(ms) => view! { <time class="mono">{utc_minute(ms)}</time> }.into_any(),
        None => view! { <span class="muted">"—"</span> }.into_any(),
    }
}
