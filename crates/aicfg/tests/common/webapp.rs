//! `aicfg webapp` as a child process on an OS-chosen port, killed when the test ends.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

/// The running server; dropping it kills it, pass or fail.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT/` as the server printed it.
    pub url: String,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `aicfg webapp --port 0 EXTRA...` (hermetic, in `cwd` when given) and reads the
/// address from its first stdout line. `server_log`: pass the server's stderr through.
pub fn start(extra: &[&str], cwd: Option<&Path>, server_log: bool) -> Server {
    let mut c = super::command();
    c.args(["webapp", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(if server_log {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let mut child = c.spawn().expect("start aicfg webapp");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("listening line")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Server { child, url, port }
}
