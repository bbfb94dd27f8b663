//! End-to-end: the page in headless Chromium shows the same best configuration as
//! `aicfg cli default --json`. Skips with a notice when no Chromium is installed (.ci/run installs it).
use crate::common::{self, temp_dir, webapp};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AICFG_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs Chromium headless with a fresh profile; returns stdout.
fn run_chromium(bin: &Path, extra: &[String], url: &str) -> String {
    let profile = temp_dir("chromium-profile");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // Lets the page's fetches and rendering finish before the DOM or screenshot is taken.
            "--virtual-time-budget=30000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    out.push_str(&reader.join().unwrap());
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// Text of the element with this id (the page puts plain text in them).
fn text_of(dom: &str, id: &str) -> String {
    let tag = format!("id=\"{id}\"");
    let at = dom
        .find(&tag)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].to_string()
}

fn f2(v: &Value) -> String {
    format!("{:.2}", v.as_f64().unwrap())
}

fn layout(b: &Value) -> String {
    let replicas = match b["replicas"].as_u64().unwrap() {
        1 => "1 replica".to_string(),
        n => format!("{n} replicas"),
    };
    if !b["agg"].is_null() {
        let a = &b["agg"];
        format!(
            "{replicas} × 1 worker {} (bs {})",
            a["parallel_label"].as_str().unwrap(),
            a["batch_size"]
        )
    } else {
        let (p, d) = (&b["prefill"], &b["decode"]);
        format!(
            "{replicas} × ({}P {} bs {} + {}D {} bs {})",
            p["workers"],
            p["parallel_label"].as_str().unwrap(),
            p["batch_size"],
            d["workers"],
            d["parallel_label"].as_str().unwrap(),
            d["batch_size"]
        )
    }
}

#[test]
fn page_shows_the_same_best_configuration_as_the_cli() {
    let Some(bin) = chromium() else {
        // Written past the test harness's capture, so the skip shows in the test summary.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED page_shows_the_same_best_configuration_as_the_cli: chromium not found (.ci/run installs it)"
        );
        return;
    };
    let cli = common::command()
        .args([
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "32",
            "--system",
            "h200_sxm",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(cli.status.success());
    let want: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let best = &want["best"];

    let cwd = temp_dir("webapp-cwd");
    let server = webapp::start(&[], Some(&cwd), true);
    let url = server.url.clone();
    // The page's defaults are Qwen3-32B on 32 × h200_sxm; ?autorun=1 presses Search.
    let page = format!("{url}?autorun=1");
    let dom = run_chromium(&bin, &["--dump-dom".to_string()], &page);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(artifacts.join("webapp-dom.html"), &dom).unwrap();

    assert!(dom.contains("data-state=\"done\""), "search did not finish");
    assert_eq!(text_of(&dom, "best-mode"), best["mode"].as_str().unwrap());
    assert_eq!(
        text_of(&dom, "best-tpg"),
        format!("{} tokens/s/gpu", f2(&best["tokens_per_s_per_gpu"]))
    );
    assert_eq!(
        text_of(&dom, "best-tpu"),
        format!("{} tokens/s/user", f2(&best["tokens_per_s_per_user"]))
    );
    assert_eq!(text_of(&dom, "best-layout"), layout(best));
    assert_eq!(
        text_of(&dom, "best-backend"),
        best["backend"].as_str().unwrap()
    );
    assert_eq!(
        text_of(&dom, "best-gpus"),
        format!("{} of {}", best["total_gpus_used"], best["total_gpus"])
    );
    assert_eq!(
        text_of(&dom, "best-latency"),
        format!("{} ms / {} ms", f2(&best["ttft_ms"]), f2(&best["tpot_ms"]))
    );
    let c = &want["comparison"];
    assert_eq!(
        text_of(&dom, "best-verdict"),
        format!(
            "{} is {:.2}x better than {}",
            c["winner"].as_str().unwrap(),
            c["ratio"].as_f64().unwrap(),
            c["loser"].as_str().unwrap()
        )
    );
    // The chart: one dot per frontier point, and the best marked.
    let points: usize = want["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pareto"].as_array().unwrap().len())
        .sum();
    assert_eq!(dom.matches("class=\"point\"").count(), points);
    assert!(dom.contains(&format!(
        "id=\"best-point\" data-tpg=\"{}\"",
        best["tokens_per_s_per_gpu"]
    )));

    // The percentile table: one row per simulated top row, with the CLI's p99 TTFT.
    let rows = want["percentiles"].as_array().unwrap();
    assert!(
        dom.contains("id=\"percentile-table\""),
        "no percentile table"
    );
    let table = &dom[dom.find("id=\"percentile-table\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr data-mode=").count(), rows.len());
    for r in rows {
        assert!(
            table.contains(&format!("<td>{}</td>", f2(&r["ttft_ms"]["p99"]))),
            "{r} not in the page's percentile table"
        );
    }

    // Every row has a working "zip" button (POST /api/save; the API tests check the zip).
    let zips: Vec<&str> = dom
        .split("<button")
        .filter(|b| b.contains("class=\"small zip\""))
        .map(|b| &b[..b.find('>').unwrap()])
        .collect();
    let rows: usize = want["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["top"].as_array().unwrap().len())
        .sum();
    assert_eq!(zips.len(), rows);
    assert!(zips.iter().all(|b| !b.contains("disabled")), "{zips:?}");

    let shot = artifacts.join("webapp-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &bin,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1800".to_string(),
        ],
        &page,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    eprintln!("screenshot: {}", shot.display());

    // The compare tab runs the form's inputs as one set through the same API.
    let dom = run_chromium(
        &bin,
        &["--dump-dom".to_string()],
        &format!("{url}?tab=compare&autorun=1"),
    );
    let at = dom.find("id=\"cmp-table\"").expect("comparison table");
    let table = &dom[at..];
    assert!(table.contains(&format!(">{}<", f2(&best["tokens_per_s_per_gpu"]))));
    assert!(table.contains(&format!(">{}<", layout(best))));

    // YAML mode runs the prefilled example (examples/exp_compare_small.yaml) like `cli exp`.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/exp_compare_small.yaml"
    );
    let cli = common::command()
        .args(["cli", "exp", "--yaml_path", example, "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success());
    let exp: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let dom = run_chromium(
        &bin,
        &["--dump-dom".to_string()],
        &format!("{url}?tab=compare&kind=yaml&autorun=1"),
    );
    std::fs::write(artifacts.join("webapp-exp-dom.html"), &dom).unwrap();
    assert_eq!(
        text_of(&dom, "cmp-exp-best"),
        format!(
            "Best experiment: {}",
            exp["best_experiment"].as_str().unwrap()
        )
    );
    let at = dom.find("id=\"cmp-exp-table\"").expect("experiment table");
    let table = &dom[at..];
    for e in exp["experiments"].as_array().unwrap() {
        let row = &table[table
            .find(&format!("data-name=\"{}\"", e["name"].as_str().unwrap()))
            .expect("a row per experiment")..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!(">{}<", f2(&e["best_tokens_per_s_per_gpu"]))),
            "{row}"
        );
        assert!(
            row.contains(&format!(">{:.2}x<", e["ratio_to_best"].as_f64().unwrap())),
            "{row}"
        );
    }
    // One chart with every experiment's frontier.
    assert!(dom.contains("class=\"point\""));

    drop(server);
    // The server never writes files: its working directory stays empty.
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "server wrote {left:?}");
    let _ = std::fs::remove_dir_all(&cwd);
}
