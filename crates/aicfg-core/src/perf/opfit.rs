//! Fitting the kernel constants to the measured op tables (`aicfg bench calibrate --ops`): per
//! GPU generation, pooled over the backends and per backend, by a deterministic coordinate
//! search in log space inside physical bounds; plus a leave-one-system-out check.
use super::empirical::{GenCalib, OpCalib, OpCalibSource};
use super::opcheck::{self, par_map, stats_of, OpFilter, TableFile};
use super::{generation, PerfSource, Work};
use crate::error::Result;
use crate::hardware::{SystemRegistry, SystemSpec};
use crate::model::graph::OpKind;
use std::collections::BTreeMap;
use std::path::Path;

/// Points kept per (table file, family): enough to pin a curve, few enough for many passes.
const PER_GROUP: usize = 600;
/// |log error| above this counts as this (a few wild points must not steer a fit).
const CLIP: f64 = 1.5;

/// One sampled point, with the work the serving path derives from it.
#[derive(Debug, Clone)]
pub struct FitPoint {
    pub sys: usize,
    pub backend: String,
    pub group: usize,
    pub op: OpKind,
    pub works: [Option<Work>; 2],
    pub measured_ms: f64,
}

/// Sampled points of every installed table whose system has a description.
#[derive(Debug, Default)]
pub struct FitData {
    pub systems: Vec<SystemSpec>,
    /// (system, backend, family) of each group.
    pub groups: Vec<(String, String, String)>,
    pub points: Vec<FitPoint>,
}

/// Prefix of the constants an op family's tables pin down (`bench calibrate --ops --op F`):
/// attention tables fit the `attn_ctx_*` / `attn_gen_*` curves, the others share their name.
pub fn constant_prefix(family: &str) -> String {
    if family.starts_with("context") {
        "attn_ctx_".into()
    } else if family.starts_with("generation") {
        "attn_gen_".into()
    } else if family.starts_with("nccl") {
        "comm_".into()
    } else {
        format!("{}_", family.trim_end_matches('_'))
    }
}

/// Physical bounds of one constant (see data/calibration/README.md for the sources).
pub fn bounds(name: &str) -> (f64, f64) {
    match name {
        // HBM streaming reaches ~90-93 % of the datasheet bandwidth in the best kernels.
        "mem_eff" | "attn_gen_eff" => (0.3, 0.95),
        "dequant_eff" => (0.2, 1.0),
        // One row per block of a reduction kernel: a few µs of block time over ~16 blocks per
        // SM on 100-150 SMs gives at most tens of ns per row.
        "gemm_quant_row_ns" => (0.0, 20.0),
        // A dynamic per-row quantization reads the BF16 row twice (max, then scale) and writes
        // the 1-byte copy: 5 B per element; 6 with the scales and some slack.
        "gemm_quant_bytes" => (0.0, 6.0),
        // Relative to the backend's BF16-cache MHA prefill kernel: at most the 2x an FP8 MMA
        // has over BF16; the product stays under `EFF_MAX`.
        "attn_ctx_kvq_ratio" | "attn_ctx_mla_ratio" | "attn_gen_kvq_ratio" => (0.2, 2.0),
        "attn_ctx_m_half" => (1.0, 16384.0),
        "attn_ctx_tiles_half" => (1.0, 4096.0),
        // Reduction length (elements) at which an expert GEMM's per-tile fixed cost equals its
        // main loop: a few 64-deep K stages of a multi-stage pipeline, up to a few thousand.
        "moe_k_half" => (32.0, 2048.0),
        // At least the un-permute write of each routed row (bf16, 2 B), at most ~8 bf16 passes
        // over it (permute, quantize, un-permute, combine, reads and writes).
        "moe_route_bytes" => (2.0, 16.0),
        n if n.ends_with("_m_half") => (1.0, 4096.0),
        "comm_eff" | "allreduce_eff" => (0.2, 0.95),
        // Against ring traffic 2(n−1)/n·bytes: NVLS reduces inside the NVSwitch and moves each
        // byte once each way, up to 2× less than a ring.
        "allreduce_nccl_eff" => (0.2, 1.9),
        // No kernel sustains the datasheet dense tensor-core peak.
        n if n.contains("eff") => (0.05, 0.95),
        // Launch + ramp-up + tail of one kernel (or the few kernels of an MoE layer).
        "kernel_us" | "attn_us" | "attn_gen_us" | "attn_gen_mla_us" | "elem_us"
        | "allreduce_us" => (1.0, 50.0),
        // A thread block's fixed work (query and page-table loads, softmax merge, output
        // write): a few hundred cycles to a few thousand at ~1.8 GHz, 0.1-5 µs.
        "attn_gen_unit_us" => (0.0, 5.0),
        // One peer-to-peer hand-off of NCCL's low-latency protocol: ~1 µs over NVLink, a few
        // over a NIC.
        "comm_hop_us" => (0.0, 5.0),
        // An MLA block covers a request's 16-128 query heads of 576 wide: up to ~4× more work.
        "attn_gen_mla_unit_us" => (0.0, 20.0),
        _ => (1.0, 200.0),
    }
}

/// Read and sample every table under `root` (filtered), on all cores.
pub fn load(root: &Path, reg: &SystemRegistry, filter: &OpFilter) -> Result<FitData> {
    let files: Vec<TableFile> = opcheck::discover(root, filter)
        .into_iter()
        .filter(|f| reg.get(&f.system).is_ok())
        .collect();
    let read: Vec<Result<Vec<opcheck::OpCase>>> = par_map(&files, |tf| {
        let mut cases = opcheck::read_cases(tf)?;
        cases.retain(|c| {
            filter
                .family
                .as_deref()
                .is_none_or(|f| c.family.starts_with(f))
        });
        // Deterministic even stride per family.
        let mut by: BTreeMap<String, Vec<opcheck::OpCase>> = BTreeMap::new();
        for c in cases {
            by.entry(c.family.clone()).or_default().push(c);
        }
        let mut out = Vec::new();
        for (_, v) in by {
            let stride = v.len().div_ceil(PER_GROUP).max(1);
            out.extend(v.into_iter().step_by(stride));
        }
        Ok(out)
    });
    let mut d = FitData::default();
    let mut sys_ix: BTreeMap<String, usize> = BTreeMap::new();
    let mut grp_ix: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (tf, r) in files.iter().zip(read) {
        let cases = r?;
        let si = *sys_ix.entry(tf.system.clone()).or_insert_with(|| {
            d.systems
                .push(reg.get(&tf.system).expect("filtered above").clone());
            d.systems.len() - 1
        });
        let node = d.systems[si].node.num_gpus_per_node;
        for c in cases {
            // Serving runs in-node all-reduce on the frameworks' custom kernels (their own
            // table), so NCCL's in-node all-reduce does not constrain those constants.
            if let OpKind::Comm { gpus, .. } = c.op {
                if c.family == "nccl/all_reduce" && gpus <= node {
                    continue;
                }
            }
            let key = (tf.system.clone(), tf.backend.clone(), c.family.clone());
            let gi = *grp_ix.entry(key.clone()).or_insert_with(|| {
                d.groups.push(key);
                d.groups.len() - 1
            });
            let (_, works) = c.works();
            d.points.push(FitPoint {
                sys: si,
                backend: tf.backend.clone(),
                group: gi,
                works,
                op: c.op,
                measured_ms: c.measured_ms,
            });
        }
    }
    Ok(d)
}

impl FitData {
    fn predict(&self, p: &FitPoint, c: &OpCalib) -> f64 {
        let src = OpCalibSource(c);
        let sys = &self.systems[p.sys];
        p.works
            .iter()
            .flatten()
            .map(|w| src.time_ms(sys, &p.op, w))
            .sum()
    }

    /// Mean over groups of the mean clipped |log error| of the selected points.
    pub fn loss(&self, idx: &[usize], c: &OpCalib) -> f64 {
        let mut sum: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        for &i in idx {
            let p = &self.points[i];
            let pred = self.predict(p, c);
            let e = if pred > 0.0 && pred.is_finite() {
                (pred / p.measured_ms).ln().abs().min(CLIP)
            } else {
                CLIP
            };
            let s = sum.entry(p.group).or_insert((0.0, 0.0));
            s.0 += e;
            s.1 += 1.0;
        }
        if sum.is_empty() {
            return 0.0;
        }
        sum.values().map(|(e, n)| e / n).sum::<f64>() / sum.len() as f64
    }

    /// Points of one generation (optionally one backend, NCCL rows always included), optionally
    /// without one system.
    pub fn select(&self, gen: &str, backend: Option<&str>, without: Option<&str>) -> Vec<usize> {
        (0..self.points.len())
            .filter(|&i| {
                let p = &self.points[i];
                let s = &self.systems[p.sys];
                generation(s) == Some(gen)
                    && without.is_none_or(|w| s.name != w)
                    && backend.is_none_or(|b| p.backend == b || p.backend == "nccl")
            })
            .collect()
    }

    /// MdAPE / median bias (%) of the selected points per family label.
    pub fn family_errors(&self, idx: &[usize], c: &OpCalib) -> BTreeMap<String, (usize, f64, f64)> {
        let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for &i in idx {
            let p = &self.points[i];
            let fam = &self.groups[p.group].2;
            let top = fam.split('/').next().unwrap_or(fam).to_string();
            by.entry(top)
                .or_default()
                .push((p.measured_ms, self.predict(p, c)));
        }
        by.into_iter()
            .map(|(k, v)| {
                let (md, bias, _, _) = stats_of(&v);
                (k, (v.len(), md, bias))
            })
            .collect()
    }
}

/// Coordinate search in log space with shrinking steps, every constant clamped to its bounds.
/// With `only`, just the constants whose name starts with it move.
pub fn fit(
    d: &FitData,
    idx: &[usize],
    start: &OpCalib,
    rounds: usize,
    only: Option<&str>,
) -> (OpCalib, f64) {
    let mut c = start.clone();
    let names: Vec<&'static str> = c.fields_mut().into_iter().map(|(n, _)| n).collect();
    for (n, v) in c.fields_mut() {
        if only.is_some_and(|o| !n.starts_with(o)) {
            continue;
        }
        let (lo, hi) = bounds(n);
        // A log-space search cannot leave 0: an absent term starts inside its range.
        if *v <= 0.0 && lo == 0.0 {
            *v = hi / 8.0;
        }
        *v = v.clamp(lo, hi);
    }
    let get = |c: &mut OpCalib, i: usize| *c.fields_mut()[i].1;
    let set = |c: &mut OpCalib, i: usize, x: f64| *c.fields_mut()[i].1 = x;
    let mut best = d.loss(idx, &c);
    let mut step = 0.5f64;
    for _ in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            if only.is_some_and(|o| !name.starts_with(o)) {
                continue;
            }
            let (lo, hi) = bounds(name);
            for dir in [1.0, -1.0] {
                loop {
                    let x = get(&mut c, i);
                    let y = (x.max(1e-6) * (dir * step).exp()).clamp(lo, hi);
                    if y == x {
                        break;
                    }
                    set(&mut c, i, y);
                    let l = d.loss(idx, &c);
                    if l + 1e-7 < best {
                        best = l;
                    } else {
                        set(&mut c, i, x);
                        break;
                    }
                }
            }
        }
        step *= 0.55;
    }
    (c, best)
}

/// Merge a one-family fit (`only`: the prefix of its constants) into the installed sections.
/// Generations its tables do not reach keep their sections; backends it refitted take their new
/// section; the other backends of a fitted generation (its tables are shared, as NCCL's are, or
/// that backend has none) take the generation's new pooled values of the fitted constants.
pub fn merge_scoped(
    into: &mut BTreeMap<String, GenCalib>,
    fitted: BTreeMap<String, GenCalib>,
    only: &str,
) {
    for (g, gc) in fitted {
        match into.get_mut(&g) {
            Some(old) => {
                let mut pooled = gc.ops.clone();
                for (b, sec) in old.backends.iter_mut() {
                    if gc.backends.contains_key(b) {
                        continue;
                    }
                    for ((n, x), (_, y)) in sec.fields_mut().into_iter().zip(pooled.fields_mut()) {
                        if n.starts_with(only) {
                            *x = *y;
                        }
                    }
                }
                old.ops = gc.ops;
                old.backends.extend(gc.backends);
            }
            None => {
                into.insert(g, gc);
            }
        }
    }
}

/// What a `--ops` calibration produced.
#[derive(Debug, Default)]
pub struct OpsFit {
    pub generations: BTreeMap<String, GenCalib>,
    /// (generation, backend or "pooled", points, loss).
    pub fits: Vec<(String, String, usize, f64)>,
}

/// How a `--ops` fit starts and what it moves.
#[derive(Debug, Clone, Copy, Default)]
pub struct FitScope<'a> {
    /// Only constants whose name starts with this move (e.g. `moe_`); the others keep the
    /// values of `current`.
    pub only: Option<&'a str>,
    /// Sections to start each generation and backend from (else `start`, and each backend
    /// from its generation's new pooled fit).
    pub current: Option<&'a BTreeMap<String, GenCalib>>,
}

/// Fit every generation with data: pooled over backends, then each backend starting there.
pub fn fit_generations(d: &FitData, start: &OpCalib, rounds: usize, scope: FitScope) -> OpsFit {
    let mut gens: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &d.points {
        if let Some(g) = generation(&d.systems[p.sys]) {
            let v = gens.entry(g.to_string()).or_default();
            if p.backend != "nccl" && !v.contains(&p.backend) {
                v.push(p.backend.clone());
            }
        }
    }
    let pooled: Vec<(String, OpCalib, f64, usize)> = {
        let keys: Vec<String> = gens.keys().cloned().collect();
        par_each(&keys, |g| {
            let idx = d.select(g, None, None);
            let st = scope
                .current
                .and_then(|m| m.get(g))
                .map_or(start, |gc| &gc.ops);
            let (c, l) = fit(d, &idx, st, rounds, scope.only);
            (g.clone(), c, l, idx.len())
        })
    };
    let mut out = OpsFit::default();
    let mut jobs: Vec<(String, String, OpCalib)> = Vec::new();
    for (g, c, l, n) in &pooled {
        out.fits.push((g.clone(), "pooled".into(), *n, *l));
        out.generations.insert(
            g.clone(),
            GenCalib {
                ops: c.clone(),
                backends: BTreeMap::new(),
            },
        );
        let mut bs = gens[g].clone();
        bs.sort();
        for b in bs {
            let mut c0 = c.clone();
            if let Some(own) = scope
                .current
                .and_then(|m| m.get(g))
                .and_then(|gc| gc.backends.get(&b))
            {
                // Keep the backend's own values of the constants that do not move, and start
                // the moving ones from the new pooled fit.
                let mut mine = own.clone();
                for ((n, x), (_, y)) in mine.fields_mut().into_iter().zip(c0.fields_mut()) {
                    if scope.only.is_some_and(|o| n.starts_with(o)) {
                        *x = *y;
                    }
                }
                c0 = mine;
            }
            jobs.push((g.clone(), b, c0));
        }
    }
    let per: Vec<(String, String, OpCalib, f64, usize)> = par_each(&jobs, |(g, b, c0)| {
        let idx = d.select(g, Some(b), None);
        let (c, l) = fit(d, &idx, c0, rounds.div_ceil(2), scope.only);
        (g.clone(), b.clone(), c, l, idx.len())
    });
    for (g, b, c, l, n) in per {
        out.fits.push((g.clone(), b.clone(), n, l));
        if let Some(gc) = out.generations.get_mut(&g) {
            gc.backends.insert(b, c);
        }
    }
    out
}

/// Leave-one-system-out: for each system, the generation's pooled fit without it (or, when it
/// is its generation's only system, the `fallback` generation's pooled fit), scored on it.
/// Returns (system, generation fitted on, family → (points, MdAPE %, bias %)).
pub type Loso = Vec<(String, String, BTreeMap<String, (usize, f64, f64)>)>;

pub fn leave_one_out(
    d: &FitData,
    fitted: &OpsFit,
    start: &OpCalib,
    rounds: usize,
    fallback: &str,
    only: Option<&str>,
) -> Loso {
    let names: Vec<usize> = (0..d.systems.len()).collect();
    par_each(&names, |&si| {
        let s = &d.systems[si];
        let name = s.name.clone();
        let Some(g) = generation(s) else {
            return (name, "-".into(), BTreeMap::new());
        };
        let own: Vec<usize> = (0..d.points.len())
            .filter(|&i| d.points[i].sys == si)
            .collect();
        let rest = d.select(g, None, Some(&name));
        let (c, from) = if rest.is_empty() {
            match fitted.generations.get(fallback) {
                Some(gc) => (gc.ops.clone(), format!("{fallback} (no other {g} system)")),
                None => (start.clone(), "start".into()),
            }
        } else {
            let st = fitted.generations.get(g).map_or(start, |gc| &gc.ops);
            (
                fit(d, &rest, st, rounds, only).0,
                format!("{g} without {name}"),
            )
        };
        (name, from, d.family_errors(&own, &c))
    })
}

/// Map over items on all cores, results in item order.
fn par_each<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: std::sync::Mutex<Vec<Option<R>>> =
        std::sync::Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_table_family_reaches_every_backend_section() {
        let base = crate::perf::empirical::EmpiricalParams::embedded();
        let mut into = base.generations.clone();
        let hopper = into["hopper"].clone();
        let mut fitted = BTreeMap::new();
        let mut pooled = hopper.ops.clone();
        pooled.comm_hop_us = 0.9;
        pooled.gemm_eff_bf16 = 0.11;
        let mut refit = pooled.clone();
        refit.comm_hop_us = 1.7;
        let mut backends = BTreeMap::new();
        backends.insert("vllm".to_string(), refit);
        fitted.insert(
            "hopper".to_string(),
            GenCalib {
                ops: pooled,
                backends,
            },
        );
        merge_scoped(&mut into, fitted, "comm_");
        let h = &into["hopper"];
        assert_eq!(
            h.backends["vllm"].comm_hop_us, 1.7,
            "a refitted backend keeps its fit"
        );
        // The others take the pooled fitted constants and keep every other constant.
        assert_eq!(h.backends["sglang"].comm_hop_us, 0.9);
        assert_eq!(
            h.backends["sglang"].gemm_eff_bf16,
            hopper.backends["sglang"].gemm_eff_bf16
        );
        assert_eq!(into["blackwell"], base.generations["blackwell"]);
    }

    #[test]
    fn bounds_are_physical() {
        for n in [
            "mem_eff",
            "gemm_eff_fp4",
            "attn_gen_eff",
            "comm_eff",
            "moe_eff_bf16",
            "moe_eff_fp8_block",
            "moe_eff_w4a16",
        ] {
            let (lo, hi) = bounds(n);
            assert!(lo > 0.0 && hi < 1.0, "{n}");
        }
        assert_eq!(bounds("kernel_us"), (1.0, 50.0));
        assert_eq!(bounds("gemm_m_half"), (1.0, 4096.0));
        assert_eq!(bounds("moe_k_half"), (32.0, 2048.0));
        assert_eq!(bounds("moe_route_bytes"), (2.0, 16.0));
    }

    #[test]
    fn families_name_their_constants() {
        assert_eq!(constant_prefix("context"), "attn_ctx_");
        assert_eq!(constant_prefix("context_mla"), "attn_ctx_");
        assert_eq!(constant_prefix("generation_attention"), "attn_gen_");
        assert_eq!(constant_prefix("moe"), "moe_");
        assert_eq!(constant_prefix("gemm"), "gemm_");
    }
}
