//! The programmable upstream: an HTTP server on 127.0.0.1 behind Envoy.
//!
//! By default it echoes the request it received (method, path, headers, body) as JSON, so a test
//! can see exactly what a filter changed. Tests script answers per path prefix (status, headers,
//! body, delay) to make a service fail or slow down, serve fixed documents (a JWKS), and read
//! hit counters to prove a request did or did not reach the upstream. The demo uses it as the
//! commerce backend (`/api/products`, `/api/orders`, `/api/payments`, ...).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A scripted answer for requests whose path starts with a prefix.
#[derive(Debug, Clone)]
pub struct Script {
    /// Status code.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Body; `None` answers with the echo JSON.
    pub body: Option<String>,
    /// Delay before answering.
    pub delay: Duration,
}

impl Script {
    /// Answer with `status` and the echo body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            delay: Duration::ZERO,
        }
    }

    /// Answer 200 with a fixed document.
    pub fn document(content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: Some(body.into()),
            delay: Duration::ZERO,
        }
    }

    /// Adds a delay.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Default)]
struct Shared {
    scripts: BTreeMap<String, Script>,
    hits: BTreeMap<String, u64>,
}

#[derive(Clone)]
struct AppState {
    name: Arc<str>,
    shared: Arc<Mutex<Shared>>,
}

/// A running upstream; stopped on drop.
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Upstream {
    /// Starts an upstream named `name` (the name is echoed, to tell versions apart) on a free
    /// loopback port.
    pub fn start(name: &str) -> anyhow::Result<Self> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = AppState {
            name: Arc::from(name),
            shared: shared.clone(),
        };
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the upstream")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("upstream-{name}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let app = Router::new().fallback(handle).with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        Ok(Self {
            name: name.to_string(),
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts the answer for paths starting with `prefix` (the longest prefix wins).
    pub fn script(&self, prefix: &str, script: Script) {
        self.lock().scripts.insert(prefix.to_string(), script);
    }

    /// Removes a script; the prefix is echoed again.
    pub fn unscript(&self, prefix: &str) {
        self.lock().scripts.remove(prefix);
    }

    /// Requests received on paths starting with `prefix` (query strings excluded).
    pub fn hits(&self, prefix: &str) -> u64 {
        self.lock()
            .hits
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// All requests received.
    pub fn total_hits(&self) -> u64 {
        self.hits("")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let script = {
        let mut shared = state.shared.lock().unwrap_or_else(PoisonError::into_inner);
        *shared.hits.entry(path.clone()).or_default() += 1;
        shared
            .scripts
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, script)| script.clone())
    };
    let echo = || {
        let mut seen = serde_json::Map::new();
        for (name, value) in &headers {
            let value = String::from_utf8_lossy(value.as_bytes()).to_string();
            match seen.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    seen.insert(name.as_str().to_string(), Value::String(value));
                }
            }
        }
        let mut echo = json!({
            "upstream": &*state.name,
            "method": method.as_str(),
            "path": uri.path_and_query().map_or("/", |p| p.as_str()),
            "headers": seen,
            "body": String::from_utf8_lossy(&body),
        });
        if let Some(data) = commerce_data(&path) {
            echo["data"] = data;
        }
        echo.to_string()
    };
    let (status, extra, body) = match script {
        Some(script) => {
            if !script.delay.is_zero() {
                tokio::time::sleep(script.delay).await;
            }
            (
                script.status,
                script.headers,
                script.body.unwrap_or_else(echo),
            )
        }
        None => (200, Vec::new(), echo()),
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    let response_headers = response.headers_mut();
    response_headers.insert("content-type", HeaderValue::from_static("application/json"));
    response_headers.insert(
        "x-upstream",
        HeaderValue::from_str(&state.name).unwrap_or(HeaderValue::from_static("invalid")),
    );
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response_headers.insert(name, value);
        }
    }
    response
}

/// Canned commerce answers, so the demo's backend looks like the platform it protects.
fn commerce_data(path: &str) -> Option<Value> {
    let service = path.strip_prefix("/api/")?.split('/').next()?;
    Some(match service {
        "products" => json!({"service": "product", "items": [
            {"id": "p-100", "name": "Trail shoe", "price": 89.0},
            {"id": "p-200", "name": "Rain jacket", "price": 129.0}]}),
        "orders" => json!({"service": "order", "orders": [{"id": "o-1", "status": "shipped"}]}),
        "payments" => json!({"service": "payment", "status": "authorized"}),
        "cart" => json!({"service": "cart", "items": []}),
        "users" => json!({"service": "user"}),
        "inventory" => json!({"service": "inventory", "inStock": true}),
        "search" => json!({"service": "search", "results": []}),
        _ => return None,
    })
}
