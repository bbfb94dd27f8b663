//! What keeps other web pages and slow or idle clients from driving or starving the server:
//! Host and Origin checks (no DNS rebinding, no cross-site POSTs), JSON-only POST bodies, early
//! refusal of oversized bodies, a body read timeout (here), and a header read timeout plus a
//! connection cap (the accept loop in [`serve`]).
use super::api::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Who may talk to the server, and how long a client may take to send a request.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Host names accepted besides IP literals of the bound address (lowercase, no port).
    pub hosts: Vec<String>,
    /// The address the server is bound to; an unspecified one (0.0.0.0) accepts any IP literal.
    pub bound: IpAddr,
    pub body_limit: usize,
    /// Longest the client may take to send the body once the headers are in.
    pub body_timeout: Duration,
    /// Longest the client may take to send the request headers (also: idle keep-alive time).
    pub header_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Guard {
    /// `localhost` and the bound name, plus `extra` (`--allowed-host`).
    pub fn new(bound_name: &str, bound: IpAddr, extra: &[String]) -> Self {
        let mut hosts = vec!["localhost".to_string()];
        let name = bound_name.trim_matches(['[', ']']).to_ascii_lowercase();
        if name.parse::<IpAddr>().is_err() {
            hosts.push(name);
        }
        hosts.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
        hosts.sort();
        hosts.dedup();
        Guard {
            hosts,
            bound,
            body_limit: 1 << 20,
            body_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }

    /// Whether `host` (a Host header or an Origin's authority, port allowed) names this server.
    fn allows(&self, authority: &str) -> bool {
        let host = match authority.strip_prefix('[') {
            // [v6]:port
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        }
        .to_ascii_lowercase();
        match host.parse::<IpAddr>() {
            // DNS rebinding needs a name; an address literal can only reach what it names.
            Ok(ip) => {
                self.bound.is_unspecified()
                    || ip == self.bound
                    || ip.is_loopback() && self.bound.is_loopback()
            }
            Err(_) => self.hosts.contains(&host),
        }
    }
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    ApiError::new(status, None, msg).into_response()
}

/// The middleware: checks, then reads the body within the time and size limits.
pub async fn check(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return refuse(StatusCode::BAD_REQUEST, "the request has no Host header");
    };
    if !g.allows(host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "host '{host}' is not a name of this server; start it with --allowed-host {} to accept it",
                host.rsplit_once(':').map_or(host, |(h, _)| h)
            ),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        // Same origin only: the page this server sent, at the address the request came to.
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return refuse(
                StatusCode::FORBIDDEN,
                "cross-origin requests are refused; open the page from this server",
            );
        }
    }
    if req.method() == Method::POST {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST bodies must be JSON (Content-Type: application/json)",
            );
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > g.body_limit as u64) {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than the limit",
        );
    }
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(g.body_timeout, axum::body::to_bytes(body, g.body_limit))
        .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body is larger than the limit",
            )
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    g.body_timeout.as_secs_f64()
                ),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The API router behind the guard.
pub fn guarded(app: Router, g: &Guard) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(g.clone()),
        check,
    ))
}

/// Accept loop: at most `max_connections` at once, each with a header read timeout (which also
/// closes idle keep-alive connections).
pub async fn serve(listener: TcpListener, app: Router, g: &Guard) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let slots = Arc::new(Semaphore::new(g.max_connections.max(1)));
    loop {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                eprintln!("warning: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let svc = TowerToHyperService::new(app.clone());
        let header_timeout = g.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 << 10);
            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rules() {
        let lo = Guard::new("127.0.0.1", "127.0.0.1".parse().unwrap(), &[]);
        assert!(lo.allows("127.0.0.1:7860"));
        assert!(lo.allows("localhost:7860"));
        assert!(lo.allows("LOCALHOST"));
        assert!(lo.allows("[::1]:7860"));
        assert!(!lo.allows("evil.example:7860"));
        assert!(!lo.allows("10.0.0.1:7860"));
        let all = Guard::new("0.0.0.0", "0.0.0.0".parse().unwrap(), &["box.lan".into()]);
        assert!(all.allows("10.0.0.1:7860"));
        assert!(all.allows("box.lan:7860"));
        assert!(!all.allows("rebind.attacker.example"));
    }
}
