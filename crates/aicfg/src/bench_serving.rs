//! The simulator in the accuracy harness: each measured row replayed as the benchmark ran it
//! (a closed loop at the row's concurrency, the lengths its client drew). Its host constants are the calibration's own
//! (fitted once, with the closed form, by `aicfg bench calibrate`).
use aicfg_core::calibrate::Prepared;
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::simulate::simulate_with;

type RowPred = std::result::Result<(f64, f64), (String, String)>;

fn predict_row(p: &Prepared, params: &EmpiricalParams) -> RowPred {
    match &p.req {
        Err(e) => Err(e.clone()),
        Ok(req) => match simulate_with(req, &p.bench_spec(req), params) {
            Ok(s) => Ok((s.report.ttft_ms.mean, s.report.tpot_ms.mean)),
            Err(e) => Err(("error".into(), e.to_string())),
        },
    }
}

/// Simulated (mean TTFT, mean TPOT) of every prepared row, or why not; rows
/// are spread over two threads (each replay is independent and deterministic).
pub fn predict_all_sim(rows: &[Prepared], params: &EmpiricalParams) -> Vec<RowPred> {
    let skip = || Err(("skipped".to_string(), String::new()));
    let run = |i: usize| predict_row(&rows[i], params);
    let mut out: Vec<RowPred> = (0..rows.len()).map(|_| skip()).collect();
    std::thread::scope(|sc| {
        let odd = sc.spawn(|| {
            (0..rows.len())
                .skip(1)
                .step_by(2)
                .map(|i| (i, run(i)))
                .collect::<Vec<_>>()
        });
        for i in (0..rows.len()).step_by(2) {
            out[i] = run(i);
        }
        for (i, r) in odd.join().expect("accuracy worker thread") {
            out[i] = r;
        }
    });
    out
}
