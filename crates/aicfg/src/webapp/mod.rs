//! `aicfg webapp`: the search in a local web page. The page, script and styles are embedded in
//! the binary; the server only reads its embedded data and never writes files.
pub mod api;

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;

#[derive(Args, Debug, Clone)]
pub struct WebappArgs {
    /// Address to bind; loopback by default so the page is not exposed to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 7860)]
    pub port: u16,
    /// Seconds one search may run before it is cancelled.
    #[arg(long = "time-limit", alias = "time_limit", default_value_t = 30)]
    pub time_limit: u64,
    /// Searches that may run at once (others wait for a slot).
    #[arg(long = "max-searches", alias = "max_searches", default_value_t = 2)]
    pub max_searches: usize,
}

pub fn run(a: &WebappArgs) -> Result<()> {
    if a.time_limit == 0 || a.max_searches == 0 {
        anyhow::bail!("--time-limit and --max-searches must be at least 1");
    }
    let limits = api::Limits {
        time_limit: std::time::Duration::from_secs(a.time_limit),
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
        // Tests and scripts read this line to find the port.
        println!("aicfg webapp listening on http://{addr}/");
        let _ = std::io::stdout().flush();
        axum::serve(listener, api::router(limits))
            .await
            .context("serving")
    })
}
