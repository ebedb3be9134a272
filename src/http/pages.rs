//! The pages the service serves from `http.web_dir` (the built `web/dist/`): the checkout
//! page and its assets, each HTML page with a strict Content-Security-Policy.

use std::path::PathBuf;

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{AppState, error::ApiError};

pub(super) async fn checkout_page(State(state): State<AppState>) -> Response {
    serve_web_file(&state.http.web_dir, "checkout.html").await
}

pub(super) async fn checkout_asset(State(state): State<AppState>, axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    serve_web_file(&state.http.web_dir, &file).await
}

/// The checkout page's Content-Security-Policy: its own script, style and API (fetch and
/// the event stream) only; images from itself and `data:` (the badge's on-chain SVG, the
/// empty favicon); no plugins, no framing, no `<base>` or form posts elsewhere. The wallet
/// reaches the chain itself, outside the page.
const CHECKOUT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn serve_web_file(dir: &std::path::Path, name: &str) -> Response {
    let allowed = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) && !name.starts_with('.');
    if !allowed {
        return ApiError::not_found("no such file").into_response();
    }
    let path: PathBuf = dir.join(name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mime = match path.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("map") | Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            let mut response = ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], bytes).into_response();
            if mime.starts_with("text/html") {
                response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CHECKOUT_CSP));
            }
            response
        }
        Err(_) if name == "checkout.html" => {
            ApiError::unavailable(format!("the checkout page is not built: run tools/install.sh (it builds {})", dir.display())).into_response()
        }
        Err(_) => ApiError::not_found("no such file").into_response(),
    }
}
