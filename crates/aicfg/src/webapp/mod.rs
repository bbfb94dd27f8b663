//! `aicfg webapp`: the search in a local web page. The page, script and styles are embedded in
//! the binary; the server only reads its embedded data and never writes files.
pub mod api;
pub mod guard;

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;

/// Longest `--time-limit` (seconds): one search past an hour is a mistake.
const MAX_TIME_LIMIT_S: u64 = 3600;
/// Most `--max-searches`: each one holds a CPU thread.
const MAX_SEARCHES: usize = 256;

#[derive(Args, Debug, Clone)]
pub struct WebappArgs {
    /// Address to bind; loopback by default so the page is not exposed to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 7860)]
    pub port: u16,
    /// Seconds one search may run before it is cancelled (1 to 3600).
    #[arg(long = "time-limit", alias = "time_limit", default_value_t = 30)]
    pub time_limit: u64,
    /// Searches that may run at once (others wait for a slot; 1 to 256).
    #[arg(long = "max-searches", alias = "max_searches", default_value_t = 2)]
    pub max_searches: usize,
    /// Connections served at once (others wait to be accepted).
    #[arg(
        long = "max-connections",
        alias = "max_connections",
        default_value_t = 256
    )]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers, and then its body; an idle
    /// keep-alive connection is closed after as long (1 to 600).
    #[arg(
        long = "client-timeout",
        alias = "client_timeout",
        default_value_t = 10
    )]
    pub client_timeout: u64,
    /// Another host name the page may be reached by (a reverse proxy, a LAN name); repeatable.
    /// Requests naming any other host are refused (DNS-rebinding protection).
    #[arg(long = "allowed-host", alias = "allowed_host")]
    pub allowed_host: Vec<String>,
}

pub fn run(a: &WebappArgs) -> Result<()> {
    if !(1..=MAX_TIME_LIMIT_S).contains(&a.time_limit) {
        anyhow::bail!(
            "--time-limit must be 1 to {MAX_TIME_LIMIT_S} seconds, got {}",
            a.time_limit
        );
    }
    if !(1..=MAX_SEARCHES).contains(&a.max_searches) {
        anyhow::bail!(
            "--max-searches must be 1 to {MAX_SEARCHES}, got {}",
            a.max_searches
        );
    }
    if !(1..=65536).contains(&a.max_connections) {
        anyhow::bail!(
            "--max-connections must be 1 to 65536, got {}",
            a.max_connections
        );
    }
    if !(1..=600).contains(&a.client_timeout) {
        anyhow::bail!(
            "--client-timeout must be 1 to 600 seconds, got {}",
            a.client_timeout
        );
    }
    let limits = api::Limits {
        time_limit: std::time::Duration::from_secs(a.time_limit),
        queue_limit: std::time::Duration::from_secs(a.time_limit),
        max_searches: a.max_searches,
        ..api::Limits::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!(
                "warning: {addr} is reachable from the network; the API has no authentication"
            );
        }
        let mut g = guard::Guard::new(&a.host, addr.ip(), &a.allowed_host);
        g.body_limit = limits.body_limit;
        g.max_connections = a.max_connections;
        g.header_timeout = std::time::Duration::from_secs(a.client_timeout);
        g.body_timeout = g.header_timeout;
        // Tests and scripts read this line to find the port.
        println!("aicfg webapp listening on http://{addr}/");
        let _ = std::io::stdout().flush();
        let app = guard::guarded(api::router(limits), &g);
        guard::serve(listener, app, &g).await.context("serving")
    })
}
