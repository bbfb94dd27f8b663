//! `aicfg eval --config eval.yaml`: search, write the configs, launch the deployment (its node
//! script, or `kubectl apply` of its manifest), wait for the endpoint, benchmark and compare,
//! then tear down what this run started. Every external step is one command; its failure is
//! one error naming the command. Keys: docs/eval.md.
use super::{evaluate, Deployment, EvalArgs};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub model: String,
    pub system: String,
    pub total_gpus: u32,
    #[serde(default = "d_backend")]
    pub backend: String,
    pub backend_version: Option<String>,
    pub isl: Option<u32>,
    pub osl: Option<u32>,
    pub ttft: Option<f64>,
    pub tpot: Option<f64>,
    /// Container image for the k8s manifest.
    pub image: Option<String>,
    /// Weights path (or Hugging Face id) the workers load.
    pub model_path: Option<String>,
    pub served_model_name: Option<String>,
    /// agg or disagg (default: the mode the search recommends).
    pub mode: Option<String>,
    #[serde(default = "d_top")]
    pub top: usize,
    /// Where the search writes its result (relative to the config file).
    #[serde(default = "d_save_dir")]
    pub save_dir: PathBuf,
    /// local (run node_0_run.sh here), k8s (kubectl apply), or none (already running).
    #[serde(default = "d_launch")]
    pub launch: String,
    /// Replaces the node script as the local launch command (run with `sh -c` in the
    /// deployment folder).
    pub launch_command: Option<String>,
    #[serde(default = "d_kubectl")]
    pub kubectl: String,
    pub namespace: Option<String>,
    /// Endpoint (default: the deployment's http://HEAD_NODE_IP:PORT; required for k8s).
    pub url: Option<String>,
    #[serde(default = "d_health_path")]
    pub health_path: String,
    #[serde(default = "d_health_timeout")]
    pub health_timeout_s: f64,
    #[serde(default = "d_true")]
    pub teardown: bool,
    /// Extra `--generator-set KEY=VALUE` overrides for the written configs.
    #[serde(default)]
    pub generator_set: Vec<String>,
    #[serde(default)]
    pub bench: BenchKeys,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BenchKeys {
    #[serde(default)]
    pub concurrency: Vec<u32>,
    pub requests_per_concurrency: Option<u64>,
    pub warmup_per_concurrency: Option<u64>,
    pub endpoint: Option<String>,
    pub framework: Option<String>,
    pub timeout_s: Option<f64>,
}

fn d_backend() -> String {
    "trtllm".into()
}
fn d_top() -> usize {
    1
}
fn d_save_dir() -> PathBuf {
    PathBuf::from("results")
}
fn d_launch() -> String {
    "local".into()
}
fn d_kubectl() -> String {
    "kubectl".into()
}
fn d_health_path() -> String {
    "/v1/models".into()
}
fn d_health_timeout() -> f64 {
    1800.0
}
fn d_true() -> bool {
    true
}

/// One step of the plan.
#[derive(Debug)]
enum Step {
    Search(Vec<String>),
    LaunchLocal { cmd: String, cwd: PathBuf },
    KubectlApply(Vec<String>),
    Wait { url: String },
    Bench,
    KubectlDelete(Vec<String>),
    StopLocal,
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn line(prog: &str, args: &[String]) -> String {
    std::iter::once(shell_quote(prog))
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl EvalConfig {
    pub fn load(path: &Path) -> Result<EvalConfig> {
        let text = super::read(path)?;
        let c: EvalConfig = serde_norway::from_str(&text).with_context(|| {
            format!(
                "{}: not a valid eval config (keys: docs/eval.md)",
                path.display()
            )
        })?;
        if !["local", "k8s", "none"].contains(&c.launch.as_str()) {
            bail!(
                "{}: launch must be local, k8s or none, not '{}'",
                path.display(),
                c.launch
            );
        }
        if c.launch == "k8s" && c.url.is_none() {
            bail!(
                "{}: launch: k8s needs url: (e.g. a kubectl port-forward of the frontend)",
                path.display()
            );
        }
        if c.total_gpus == 0 || c.top == 0 {
            bail!("{}: total_gpus and top must be at least 1", path.display());
        }
        if !(c.health_timeout_s.is_finite() && c.health_timeout_s > 0.0) {
            bail!("{}: health_timeout_s must be positive", path.display());
        }
        if let Some(m) = &c.mode {
            if m != "agg" && m != "disagg" {
                bail!("{}: mode must be agg or disagg, not '{m}'", path.display());
            }
        }
        Ok(c)
    }

    fn search_args(&self, save_dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "cli".into(),
            "default".into(),
            "--model".into(),
            self.model.clone(),
            "--system".into(),
            self.system.clone(),
            "--total_gpus".into(),
            self.total_gpus.to_string(),
            "--backend".into(),
            self.backend.clone(),
        ];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(k.into());
                a.push(v);
            }
        };
        opt("--backend_version", self.backend_version.clone());
        opt("--isl", self.isl.map(|v| v.to_string()));
        opt("--osl", self.osl.map(|v| v.to_string()));
        opt("--ttft", self.ttft.map(|v| v.to_string()));
        opt("--tpot", self.tpot.map(|v| v.to_string()));
        opt("--save_dir", Some(save_dir.display().to_string()));
        opt("--save-top", Some(self.top.to_string()));
        let mut sets = self.generator_set.clone();
        if let Some(i) = &self.image {
            sets.push(format!("K8sConfig.k8s_image={i}"));
        }
        if let Some(p) = &self.model_path {
            sets.push(format!("ServiceConfig.model_path={p}"));
        }
        if let Some(n) = &self.served_model_name {
            sets.push(format!("ServiceConfig.served_model_name={n}"));
        }
        for s in sets {
            a.push("--generator-set".into());
            a.push(s);
        }
        a.push("--force".into());
        a
    }
}

/// A launched local deployment: its process group ends with this run.
struct Launched {
    child: Child,
}

impl Launched {
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pg = format!("-{}", self.child.id());
        // The node script traps EXIT and stops its workers; TERM the whole group, then KILL.
        let _ = Command::new("kill").args(["-TERM", "--", &pg]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &pg]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Poll GET `url` until it answers 200, the launched process dies, or the time is up.
fn wait_healthy(
    url: &str,
    timeout: Duration,
    launched: &mut Option<Launched>,
    log: &Path,
) -> Result<()> {
    let target = crate::serve_bench::client::Target::parse(url)?;
    let route = url
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
        .unwrap_or_default();
    let t = Instant::now();
    let rt = crate::serve_bench::runtime(1)?;
    loop {
        let ok = rt.block_on(async {
            let Ok(tcp) = tokio::net::TcpStream::connect(&target.authority).await else {
                return false;
            };
            let Ok((mut s, conn)) = hyper::client::conn::http1::handshake::<
                _,
                http_body_util::Empty<bytes::Bytes>,
            >(hyper_util::rt::TokioIo::new(tcp))
            .await
            else {
                return false;
            };
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let req = hyper::Request::get(if route.is_empty() {
                "/".to_string()
            } else {
                route.clone()
            })
            .header(hyper::header::HOST, target.authority.as_str())
            .body(http_body_util::Empty::new());
            let Ok(req) = req else { return false };
            matches!(
                tokio::time::timeout(Duration::from_secs(5), s.send_request(req)).await,
                Ok(Ok(r)) if r.status().is_success()
            )
        });
        if ok {
            return Ok(());
        }
        if let Some(l) = launched.as_mut() {
            if let Ok(Some(st)) = l.child.try_wait() {
                bail!(
                    "the deployment exited ({st}) before {url} answered; last lines of {}:\n{}",
                    log.display(),
                    tail(log)
                );
            }
        }
        if t.elapsed() >= timeout {
            bail!("{url} did not answer within {:.0} s", timeout.as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run_checked(prog: &str, args: &[String], what: &str) -> Result<()> {
    let st = Command::new(prog)
        .args(args)
        .status()
        .with_context(|| format!("{what}: cannot run `{}`", line(prog, args)))?;
    if !st.success() {
        bail!("{what} failed ({st}): `{}`", line(prog, args));
    }
    Ok(())
}

pub fn run(path: &Path, a: &EvalArgs) -> Result<()> {
    let c = EvalConfig::load(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let save_dir = if c.save_dir.is_absolute() {
        c.save_dir.clone()
    } else {
        base.join(&c.save_dir)
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(aicfg_gen::safe_component)
        .unwrap_or_else(|| "eval".into());
    let result_dir = save_dir.join(&stem);
    let me = std::env::current_exe().context("cannot find the aicfg executable")?;
    let me_s = me.display().to_string();
    let search = c.search_args(&result_dir);
    let mode = c.mode.clone().or_else(|| a.mode.clone());
    let top = c.top;
    let deploy_dir_hint = format!(
        "{}/<result>/{}/top{top}",
        result_dir.display(),
        mode.as_deref().unwrap_or("<best mode>")
    );
    let ns: Vec<String> = c
        .namespace
        .iter()
        .flat_map(|n| ["-n".to_string(), n.clone()])
        .collect();
    let manifest_hint = format!(
        "{deploy_dir_hint}/{}/k8s_deploy.yaml",
        mode.as_deref().unwrap_or("<mode>")
    );
    // The plan, as commands (paths inside the result are known only after the search).
    let mut plan = vec![Step::Search(search.clone())];
    match c.launch.as_str() {
        "local" => plan.push(Step::LaunchLocal {
            cmd: c
                .launch_command
                .clone()
                .unwrap_or_else(|| "bash node_0_run.sh".into()),
            cwd: PathBuf::from(format!(
                "{deploy_dir_hint}/{}",
                mode.as_deref().unwrap_or("<mode>")
            )),
        }),
        "k8s" => plan.push(Step::KubectlApply(
            [
                vec!["apply".into(), "-f".into(), manifest_hint.clone()],
                ns.clone(),
            ]
            .concat(),
        )),
        _ => {}
    }
    plan.push(Step::Wait {
        url: c
            .url
            .clone()
            .unwrap_or_else(|| "<the deployment's http://HEAD_NODE_IP:PORT>".into())
            + &c.health_path,
    });
    plan.push(Step::Bench);
    if c.teardown {
        match c.launch.as_str() {
            "local" => plan.push(Step::StopLocal),
            "k8s" => plan.push(Step::KubectlDelete(
                [
                    vec!["delete".into(), "-f".into(), manifest_hint.clone()],
                    ns.clone(),
                ]
                .concat(),
            )),
            _ => {}
        }
    }
    if a.dry_run {
        crate::emitln!(
            "aicfg eval plan for {} (dry run: nothing is started)",
            path.display()
        );
        for (i, s) in plan.iter().enumerate() {
            let text = match s {
                Step::Search(args) => format!("search and write configs: {}", line(&me_s, args)),
                Step::LaunchLocal { cmd, cwd } => format!("launch: (cd {} && {cmd})  [own process group; log: eval/launch.log]", cwd.display()),
                Step::KubectlApply(args) => format!("deploy: {}", line(&c.kubectl, args)),
                Step::Wait { url } => format!("wait until GET {url} answers 200 (at most {:.0} s)", c.health_timeout_s),
                Step::Bench => format!(
                    "benchmark and compare: aicfg eval --save_dir {} --top {top}{} (the bench script's concurrencies{})",
                    result_dir.display(),
                    mode.as_deref().map(|m| format!(" --mode {m}")).unwrap_or_default(),
                    if c.bench.concurrency.is_empty() { String::new() } else { format!(", here {:?}", c.bench.concurrency) }
                ),
                Step::KubectlDelete(args) => format!("tear down: {}", line(&c.kubectl, args)),
                Step::StopLocal => "tear down: SIGTERM the launch's process group (SIGKILL after 30 s)".into(),
            };
            crate::emitln!("{}. {text}", i + 1);
        }
        return Ok(());
    }

    // 1. Search and write the configs.
    crate::emitln!("[1] search: {}", line(&me_s, &search));
    let out = Command::new(&me)
        .args(&search)
        .output()
        .with_context(|| format!("cannot run `{}`", line(&me_s, &search)))?;
    if !out.status.success() {
        bail!(
            "the search failed ({}): `{}`\n{}",
            out.status,
            line(&me_s, &search),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let dep = Deployment::locate(&result_dir, mode.as_deref(), top)?;
    let run_dir = dep.dir.join(&dep.mode);
    let eval_dir = a.out.clone().unwrap_or_else(|| dep.dir.join("eval"));
    std::fs::create_dir_all(&eval_dir)
        .with_context(|| format!("cannot create {}", eval_dir.display()))?;
    let url = c
        .url
        .clone()
        .or_else(|| a.url.clone())
        .unwrap_or_else(|| dep.default_url());
    crate::emitln!(
        "    deployment: {} ({} GPUs)",
        dep.dir.display(),
        dep.num_gpus()
    );

    // 2. Launch.
    let log = eval_dir.join("launch.log");
    let mut launched: Option<Launched> = None;
    let manifest = run_dir.join("k8s_deploy.yaml");
    let k8s_args = |verb: &str| -> Vec<String> {
        [
            vec![
                verb.to_string(),
                "-f".into(),
                manifest.display().to_string(),
            ],
            ns.clone(),
        ]
        .concat()
    };
    match c.launch.as_str() {
        "local" => {
            if run_dir.join("node_1_run.sh").exists() {
                bail!(
                    "{} spans several nodes (node_1_run.sh exists): start each node's script on its node and run `aicfg eval --save_dir`, or use launch: k8s",
                    run_dir.display()
                );
            }
            let cmd = c
                .launch_command
                .clone()
                .unwrap_or_else(|| "bash node_0_run.sh".into());
            crate::emitln!(
                "[2] launch: (cd {} && {cmd}) > {}",
                run_dir.display(),
                log.display()
            );
            let f = std::fs::File::create(&log)
                .with_context(|| format!("cannot write {}", log.display()))?;
            use std::os::unix::process::CommandExt;
            let child = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .current_dir(&run_dir)
                .stdin(Stdio::null())
                .stdout(f.try_clone()?)
                .stderr(f)
                .process_group(0)
                .spawn()
                .with_context(|| format!("launch: cannot run `{cmd}` in {}", run_dir.display()))?;
            launched = Some(Launched { child });
        }
        "k8s" => {
            crate::emitln!("[2] deploy: {}", line(&c.kubectl, &k8s_args("apply")));
            run_checked(&c.kubectl, &k8s_args("apply"), "deploy")?;
        }
        _ => crate::emitln!("[2] launch: none (the deployment is already running)"),
    }
    let teardown = |launched: &mut Option<Launched>| -> Result<()> {
        if !c.teardown {
            return Ok(());
        }
        match c.launch.as_str() {
            "local" => {
                if let Some(mut l) = launched.take() {
                    crate::emitln!("[5] tear down: stopping the launched process group");
                    l.stop();
                }
                Ok(())
            }
            "k8s" => {
                crate::emitln!("[5] tear down: {}", line(&c.kubectl, &k8s_args("delete")));
                run_checked(&c.kubectl, &k8s_args("delete"), "tear down")
            }
            _ => Ok(()),
        }
    };
    // 3–4. Wait, benchmark; tear down whatever happened.
    let res = (|| -> Result<()> {
        let health = format!("{}{}", url.trim_end_matches('/'), c.health_path);
        crate::emitln!("[3] wait for {health}");
        wait_healthy(
            &health,
            Duration::from_secs_f64(c.health_timeout_s.min(1e6)),
            &mut launched,
            &log,
        )?;
        crate::emitln!("[4] benchmark");
        let mut args = a.clone();
        args.top = top;
        args.out = Some(eval_dir.clone());
        if !c.bench.concurrency.is_empty() {
            args.concurrency = c.bench.concurrency.clone();
        }
        if let Some(v) = c.bench.requests_per_concurrency {
            args.requests_per_concurrency = Some(v);
        }
        if let Some(v) = c.bench.warmup_per_concurrency {
            args.warmup_per_concurrency = Some(v);
        }
        if let Some(v) = c.bench.timeout_s {
            args.timeout = v;
        }
        if let Some(e) = &c.bench.endpoint {
            args.endpoint = clap::ValueEnum::from_str(e, true).map_err(|_| {
                anyhow::anyhow!("bench.endpoint must be completions or chat, not '{e}'")
            })?;
        }
        if let Some(f) = &c.bench.framework {
            args.framework = clap::ValueEnum::from_str(f, true).map_err(|_| {
                anyhow::anyhow!(
                    "bench.framework '{f}' is unknown (auto, vllm, sglang, trtllm, dynamo, none)"
                )
            })?;
        }
        evaluate(&dep, &args, Some(url.clone()))
    })();
    let down = teardown(&mut launched);
    res?;
    down
}
