//! Refuses state-changing requests that a browser sends on behalf of another site
//! (cross-site request forgery).
//!
//! Actions such as a sync or a rollback take a body that may be empty, so a plain HTML
//! form on any page could otherwise make a visitor's browser start them. Browsers say
//! where a request comes from: `Sec-Fetch-Site` (every current browser) or, failing
//! that, `Origin`. A request is refused when either names another site. Clients that
//! are not browsers (curl, CI jobs, Argo CD notifications, forge and Jira webhooks)
//! send neither header and are not affected; they are authorised by their tokens and
//! signatures as before.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub async fn same_origin_only(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    match verdict(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::warn!(path = %request.uri().path(), %reason, "cross-site request refused");
            let body = json!({ "error": format!("cross-site request refused: {reason}; send it from Landfall's own pages or from a client that is not a browser") });
            (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
        }
    }
}

/// `Ok` when the request comes from Landfall's own pages or not from a browser.
fn verdict(headers: &HeaderMap) -> Result<(), String> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            // `none`: the user typed the address or used a bookmark.
            "same-origin" | "none" => Ok(()),
            other => Err(format!("the browser says it comes from a `{other}` page")),
        };
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else { return Ok(()) };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    // Behind a reverse proxy the browser's host is the forwarded one.
    let hosts = [text("x-forwarded-host"), text(header::HOST.as_str())];
    if !origin_host.is_empty() && hosts.iter().flatten().any(|host| host.eq_ignore_ascii_case(origin_host)) {
        Ok(())
    } else {
        Err(format!("its Origin `{origin}` is not this server"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn browsers_are_held_to_their_own_site_and_other_clients_pass() {
        assert!(verdict(&headers(&[])).is_ok(), "curl and webhooks send neither header");
        assert!(verdict(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(verdict(&headers(&[("sec-fetch-site", "none")])).is_ok());
        assert!(verdict(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(verdict(&headers(&[("sec-fetch-site", "same-site")])).is_err(), "a sibling subdomain is another site");
        let same = [("origin", "http://127.0.0.1:3000"), ("host", "127.0.0.1:3000")];
        assert!(verdict(&headers(&same)).is_ok());
        let other = [("origin", "https://evil.example"), ("host", "landfall.example.com")];
        assert!(verdict(&headers(&other)).is_err());
        assert!(verdict(&headers(&[("origin", "null"), ("host", "landfall.example.com")])).is_err());
        let proxied = [
            ("origin", "https://landfall.example.com"),
            ("host", "127.0.0.1:3000"),
            ("x-forwarded-host", "landfall.example.com"),
        ];
        assert!(verdict(&headers(&proxied)).is_ok());
    }
}
