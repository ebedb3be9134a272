//! The pages the service serves from `http.web_dir` (the built `web/dist/`): the checkout
//! page and the member's account page (`/account`) and their assets, and the API docs page (`/docs`: Swagger UI, bundled from npm and
//! served from here, rendering `/openapi.json`) and its assets; each HTML page with a
//! strict Content-Security-Policy.

use std::path::PathBuf;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{AppState, error::ApiError};

/// Returns the page routes: `/checkout`, `/account` and `/docs`, each with its `assets/` (anyone may
/// load them; not rate-limited).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/checkout", get(checkout_page))
        .route("/checkout/assets/{file}", get(asset))
        .route("/account", get(account_page))
        .route("/account/assets/{file}", get(asset))
        .route("/docs", get(docs_page))
        .route("/docs/assets/{file}", get(asset))
}

async fn checkout_page(State(state): State<AppState>) -> Response {
    serve_web_file(&state.http.web_dir, "checkout.html").await
}

async fn account_page(State(state): State<AppState>) -> Response {
    serve_web_file(&state.http.web_dir, "account.html").await
}

async fn docs_page(State(state): State<AppState>) -> Response {
    serve_web_file(&state.http.web_dir, "docs.html").await
}

async fn asset(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    serve_web_file(&state.http.web_dir, &file).await
}

/// The pages' Content-Security-Policy: their own script, style and API (fetch, the
/// checkout's event stream and the docs page's `/openapi.json`) only; images from itself and `data:` (the badge's on-chain SVG, the
/// empty favicon); no plugins, no framing, no `<base>` or form posts elsewhere. The wallet
/// reaches the chain itself, outside the page.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
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
                response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
            }
            response
        }
        Err(_) if name.ends_with(".html") => {
            let page = name.trim_end_matches(".html");
            ApiError::unavailable(format!("the {page} page is not built: run tools/install.sh (it builds {})", dir.display())).into_response()
        }
        Err(_) => ApiError::not_found("no such file").into_response(),
    }
}
