//! Serving models: static (one batch), aggregated in-flight batching, disaggregated xPyD.
//!
//! Aggregated serving is modelled as the steady state of a closed loop with `n` requests in
//! flight per worker (what a concurrency benchmark runs): requests arrive at the rate they
//! finish, so each scheduler step carries `λ·T` new prefills beside the running decodes. TTFT is
//! the wait for the next step, the prefill step(s) themselves, the wait for a prefill slot when
//! the step token budget is saturated, and the wait for KV-cache room when `n` exceeds what the
//! KV budget holds — the delays a fixed multiplier cannot capture.
pub mod mtp;

use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use crate::memory::{memory, MemoryBreakdown, MemoryInput};
use crate::model::graph::{Parallel, WorkerGraph};
use crate::model::ModelSpec;
use crate::perf::{step::price_step, BackendCalib, OpTime, PerfSource, Step};
use crate::quant::QuantConfig;
use serde::Serialize;

pub mod sim;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeMode {
    Agg,
    Disagg,
    Static,
}

impl ServeMode {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agg" => Ok(ServeMode::Agg),
            "disagg" => Ok(ServeMode::Disagg),
            "static" => Ok(ServeMode::Static),
            _ => Err(AicfgError::Unknown {
                what: "estimate mode",
                given: s.to_string(),
                known: "agg, disagg, static".into(),
            }),
        }
    }
}

/// Request shape shared by every worker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Workload {
    pub isl: f64,
    pub osl: f64,
    pub prefix: f64,
    pub nextn: u32,
    /// Draft tokens accepted per step on average (0 without MTP).
    pub nextn_accepted: f64,
}

impl Workload {
    /// Checks every prediction and search makes of the request shape.
    pub fn validate(&self) -> Result<()> {
        let max = f64::from(crate::limits::MAX_TOKENS);
        for (what, v) in [("isl", self.isl), ("osl", self.osl)] {
            if !(v.is_finite() && (1.0..=max).contains(&v)) {
                return Err(AicfgError::invalid(
                    what,
                    format!("must be a positive integer of at most {max} tokens, got {v}"),
                ));
            }
        }
        if self.prefix < 0.0 || self.prefix >= self.isl {
            return Err(AicfgError::invalid(
                "prefix",
                format!("must be in [0, isl), got {}", self.prefix),
            ));
        }
        if !(0.0..=self.nextn as f64).contains(&self.nextn_accepted) {
            return Err(AicfgError::invalid(
                "nextn accept rate",
                format!(
                    "accepted draft tokens {} must be between 0 and nextn {}",
                    self.nextn_accepted, self.nextn
                ),
            ));
        }
        Ok(())
    }

    /// Decode steps after the first token (MTP advances several tokens per step).
    pub fn decode_iterations(&self) -> f64 {
        ((self.osl - 1.0) / (1.0 + self.nextn_accepted)).max(0.0)
    }
    fn gen_tokens_per_req(&self) -> f64 {
        1.0 + self.nextn as f64
    }
    fn new_tokens(&self) -> f64 {
        (self.isl - self.prefix).max(1.0)
    }
    fn progress(&self) -> f64 {
        1.0 + self.nextn_accepted
    }
    /// How the step token budget cuts one prompt: (chunks per prompt, prompts per prefill step,
    /// at most `running`).
    fn prompt_chunking(&self, budget: f64, running: f64) -> (f64, f64) {
        let s_new = self.new_tokens();
        (
            (s_new / budget).ceil().max(1.0),
            (budget / s_new).floor().clamp(1.0, running),
        )
    }
}

/// One kind of worker: model graph on a system under a backend.
pub struct Worker<'a> {
    pub model: &'a ModelSpec,
    pub graph: WorkerGraph,
    pub system: &'a SystemSpec,
    pub backend: Backend,
    pub calib: BackendCalib,
    pub source: &'a dyn PerfSource,
    pub free_gpu_memory_fraction: Option<f64>,
    /// MTP draft layers as a multiplier on per-layer decode work.
    pub layer_scale: f64,
    /// Step token budget (TRT-LLM `max_num_tokens`); `None` = the backend default.
    pub token_budget: Option<f64>,
}

impl<'a> Worker<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &'a ModelSpec,
        parallel: &Parallel,
        quant: &QuantConfig,
        system: &'a SystemSpec,
        backend: Backend,
        calib: BackendCalib,
        source: &'a dyn PerfSource,
        free_gpu_memory_fraction: Option<f64>,
        nextn: u32,
    ) -> Result<Self> {
        let graph = WorkerGraph::build(model, parallel, quant)?;
        let l = model.num_layers as f64;
        Ok(Worker {
            model,
            graph,
            system,
            backend,
            calib,
            source,
            free_gpu_memory_fraction,
            layer_scale: (l + nextn as f64) / l,
            token_budget: None,
        })
    }

    /// Device time of one step (ms), without the per-step and per-request host costs: the GPU
    /// time, or the time to launch its kernels one by one where that is longer (a step the
    /// framework does not replay from a CUDA graph).
    pub fn step_ms(&self, s: &Step) -> f64 {
        let scale = if s.gen_reqs > 0.0 {
            self.layer_scale
        } else {
            1.0
        };
        let b = price_step(&self.graph, self.system, self.source, s, scale, false);
        let prefill = s.ctx_reqs * s.ctx_tokens;
        if self
            .backend
            .graphs_step(prefill, prefill + s.gen_reqs * s.gen_tokens_per_req)
        {
            b.total_ms
        } else {
            b.total_ms.max(b.launches * self.calib.launch_us * 1e-3)
        }
    }

    /// Wall time of one step (ms): GPU time plus the host time the framework leaves exposed,
    /// for a step carrying `reqs` requests.
    pub fn wall_ms(&self, s: &Step, reqs: f64) -> f64 {
        self.calib.step_wall_ms(self.step_ms(s), reqs)
    }

    /// Wall time of a prefill of `s` run as `chunks` budget-sized steps of `reqs` requests each.
    pub fn chunked_wall_ms(&self, s: &Step, reqs: f64, chunks: f64) -> f64 {
        let k = chunks.max(1.0);
        self.calib.step_wall_ms(self.step_ms(s) / k, reqs) * k
    }

    pub fn breakdown(&self, s: &Step) -> Vec<OpTime> {
        let scale = if s.gen_reqs > 0.0 {
            self.layer_scale
        } else {
            1.0
        };
        price_step(&self.graph, self.system, self.source, s, scale, true).ops
    }

    pub fn gpus(&self) -> u32 {
        self.graph.parallel.gpus()
    }

    pub fn budget(&self) -> f64 {
        self.token_budget
            .unwrap_or_else(|| self.backend.step_token_budget(self.system))
    }

    pub fn memory(&self, batch: f64, seq_len: f64, step_tokens: f64) -> MemoryBreakdown {
        memory(
            self.model,
            &self.graph,
            self.system,
            self.backend,
            &MemoryInput {
                batch,
                seq_len,
                step_tokens,
                free_gpu_memory_fraction: self.free_gpu_memory_fraction,
                spec_decode: self.layer_scale > 1.0,
            },
        )
    }

    /// GPU-memory fraction this worker's memory model uses (the user's, else the backend's
    /// default for this layout), as the generated engine flags must state it.
    pub fn memory_fraction(&self) -> f64 {
        self.free_gpu_memory_fraction.unwrap_or_else(|| {
            self.backend
                .memory_fraction(self.system, &self.graph.parallel, self.layer_scale > 1.0)
                .0
        })
    }
}

/// Result of one worker or one deployment at one operating point.
#[derive(Debug, Clone, Serialize)]
pub struct Perf {
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub request_latency_ms: f64,
    /// Output tokens per second of the whole unit (worker or xPyD replica).
    pub tokens_per_s: f64,
    pub tokens_per_s_per_gpu: f64,
    pub tokens_per_s_per_user: f64,
    pub request_rate: f64,
    pub concurrency: f64,
    pub num_gpus: u32,
    /// Requests that actually run at once per attention-DP rank (KV-capacity bound applied).
    pub running_per_rank: f64,
    /// Mean time a request waits for KV room before it can start (ms).
    pub kv_queue_ms: f64,
}

impl Perf {
    /// The same operating point with TTFT and TPOT multiplied (correction scales); rates follow.
    pub fn with_latency_scales(self, w: &Workload, ttft_scale: f64, tpot_scale: f64) -> Perf {
        if ttft_scale == 1.0 && tpot_scale == 1.0 {
            return self;
        }
        finish(
            self.ttft_ms * ttft_scale,
            self.tpot_ms * tpot_scale,
            w,
            self.concurrency,
            self.num_gpus,
            self.running_per_rank,
            self.kv_queue_ms,
        )
    }
}

fn finish(
    ttft: f64,
    tpot: f64,
    w: &Workload,
    concurrency: f64,
    gpus: u32,
    running: f64,
    q: f64,
) -> Perf {
    let latency = ttft + tpot * (w.osl - 1.0).max(0.0);
    let rate = if latency > 0.0 {
        concurrency / latency * 1000.0
    } else {
        0.0
    };
    let tokens = rate * w.osl;
    Perf {
        ttft_ms: ttft,
        tpot_ms: tpot,
        request_latency_ms: latency,
        tokens_per_s: tokens,
        tokens_per_s_per_gpu: tokens / gpus as f64,
        tokens_per_s_per_user: if tpot > 0.0 { 1000.0 / tpot } else { 0.0 },
        request_rate: rate,
        concurrency,
        num_gpus: gpus,
        running_per_rank: running,
        kv_queue_ms: q,
    }
}

/// Aggregated worker under a closed loop of `batch` requests per attention-DP rank.
///
/// Requests of a concurrency benchmark are identical, so those admitted in one step finish in one
/// step and come back together: arrivals form groups of `g` requests (as many prompts as one step's
/// token budget holds) that stay together wave after wave. The first wave arrives at once and is
/// prefilled group after group; later groups find the prefill slot free (their predecessors were
/// spaced by one prefill each).
pub fn agg(wk: &Worker, w: &Workload, batch: f64, burst_waves: f64) -> Perf {
    let p = wk.graph.parallel;
    let dp = p.dp as f64;
    let n = batch.max(1.0);
    let concurrency = n * dp;
    let s_new = w.new_tokens();
    let kv_avg = w.isl + w.osl / 2.0;
    let seq_max = w.isl + w.osl;
    let budget = wk.budget();
    let mem = wk.memory(n, seq_max, budget);
    let running = n
        .min(mem.max_requests_by_kv.max(1.0))
        .min(wk.backend.max_running(wk.system));
    let tpr = w.gen_tokens_per_req();
    let d_iter = w.decode_iterations();
    let c = wk.calib;
    if !wk.backend.mixes_prefill_with_decode() {
        return agg_in_waves(wk, w, n, running, budget);
    }

    // One step with `a` requests prefilling `tokens_each` beside the decoding rest of the batch.
    let step_with = |a: f64, tokens_each: f64| -> f64 {
        let gen = (running - a).max(0.0);
        if wk.backend.mixes_prefill_with_decode() {
            let s = Step {
                ctx_reqs: a,
                ctx_tokens: tokens_each,
                ctx_prefix: w.prefix,
                gen_reqs: gen,
                gen_kv_len: kv_avg,
                gen_tokens_per_req: tpr,
            };
            wk.wall_ms(&s, running.max(a))
        } else {
            // Prefill batches run on their own, then decoding resumes.
            let pre = if a > 0.0 {
                wk.wall_ms(&Step::context(a, tokens_each, w.prefix), a)
            } else {
                0.0
            };
            let dec = if gen > 0.0 {
                wk.wall_ms(&Step::decode(gen, kv_avg, tpr), gen)
            } else {
                0.0
            };
            pre + dec
        }
    };
    // `group`: requests that share one prefill step.
    let (chunks, group) = w.prompt_chunking(budget, running);
    let chunk_tokens = s_new / chunks;
    let t_group = step_with(group, chunk_tokens) * chunks;

    // Steady state: per step, λ·T arrivals' prefill work rides along the decodes.
    let t_dec = step_with(0.0, 0.0);
    let mut t = t_dec;
    let wait = c.wait_steps * busy_share(running);
    let mut ttft_run = c.ttft_ms + wait * t_dec + t_group;
    let mut a = 0.0;
    for _ in 0..30 {
        let latency = ttft_run + d_iter * t;
        let lambda = running / latency.max(1e-9);
        let a_new = (lambda * t).min(budget / s_new).min(running);
        a = 0.5 * (a + a_new);
        let t_new = mean_mixed_step(a, s_new, budget, t_dec, &step_with);
        t = 0.5 * (t + t_new);
        // A request's prefill rides the step that carries this wave's arrivals (about λ·T of
        // them, at least itself), not a full budget's group: only the first wave arrives at once.
        let t_pref = step_with(a.clamp(1.0, group), chunk_tokens) * chunks;
        ttft_run = c.ttft_ms + wait * t + t_pref;
    }
    // Prefill saturation: the loop slows until one budget of prefill per step suffices.
    let latency = ttft_run + d_iter * t;
    let lambda_cap = budget / s_new / t;
    let mut lambda = running / latency;
    let mut steady = ttft_run;
    if lambda > lambda_cap {
        lambda = lambda_cap;
        steady = (running / lambda_cap - d_iter * t).max(ttft_run);
    }
    // First wave: groups prefill one after another.
    let groups = (running / group).ceil();
    let burst = c.ttft_ms + t_group * (groups + 1.0) / 2.0;
    let waves = burst_waves.max(1.0);
    let mut ttft = (burst.max(steady) + (waves - 1.0) * steady) / waves;
    // Requests beyond the KV capacity wait for a running one to finish.
    let kv_queue = if n > running {
        (n - running) / lambda
    } else {
        0.0
    };
    ttft += kv_queue;
    let tpot = t / w.progress();
    finish(ttft, tpot, w, concurrency, wk.gpus(), running, kv_queue)
}

/// Mean step time when `a` prompts of `s_new` tokens arrive per step on average. Arrivals are
/// whole: a step carries ⌊u⌋ or ⌊u⌋ + 1 prefill chunks (u = a·s_new / chunk, a chunk being a
/// prompt or one budget of it), so the mean interpolates between those two integer steps. Pricing
/// one step with a fractional prompt would be wrong where the step cost is not linear in its
/// prefill tokens: a MoE step with any prefill reads nearly every expert, a decode step few.
fn mean_mixed_step(
    a: f64,
    s_new: f64,
    budget: f64,
    t_dec: f64,
    step_with: &dyn Fn(f64, f64) -> f64,
) -> f64 {
    if a <= 0.0 || s_new <= 0.0 {
        return t_dec;
    }
    let chunk = s_new.min(budget.max(1.0));
    let u = a * s_new / chunk;
    let lo = u.floor();
    let frac = u - lo;
    let at = |k: f64| if k <= 0.0 { t_dec } else { step_with(k, chunk) };
    let t_lo = at(lo);
    if frac <= 0.0 {
        t_lo
    } else {
        (1.0 - frac) * t_lo + frac * at(lo + 1.0)
    }
}

/// Share of a new request's arrivals that find the engine mid-step: with `running` requests in
/// flight, the other `running − 1` keep it busy; a lone request starts on an idle engine.
fn busy_share(running: f64) -> f64 {
    ((running - 1.0) / running.max(1.0)).max(0.0)
}

/// Agg under a prefill-first scheduler that never mixes prefill into decode steps (SGLang):
/// a closed loop of identical requests stays in lockstep waves. Each wave prefills every request
/// group after group while decoding stops, then decodes them together to the end, so the prefill
/// burst lands in TTFT (and, for the early groups, as a stall in their TPOT) rather than being
/// spread over every decode step.
fn agg_in_waves(wk: &Worker, w: &Workload, n: f64, running: f64, budget: f64) -> Perf {
    let c = wk.calib;
    let s_new = w.new_tokens();
    let kv_avg = w.isl + w.osl / 2.0;
    let (chunks, group) = w.prompt_chunking(budget, running);
    let t_group = wk.wall_ms(&Step::context(group, s_new / chunks, w.prefix), group) * chunks;
    let groups = (running / group).ceil();
    let t_dec = wk.wall_ms(
        &Step::decode(running, kv_avg, w.gen_tokens_per_req()),
        running,
    );
    let ttft_run =
        c.ttft_ms + c.wait_steps * busy_share(running) * t_dec + t_group * (groups + 1.0) / 2.0;
    // Early groups wait for the later groups' prefill before their second token.
    let stall = t_group * (groups - 1.0) / 2.0;
    let decode_ms = w.decode_iterations() * t_dec + stall;
    let tpot = if w.osl > 1.0 {
        decode_ms / (w.osl - 1.0)
    } else {
        t_dec / w.progress()
    };
    let wave = ttft_run + decode_ms;
    // Requests beyond the KV capacity wait for running ones to finish.
    let kv_queue = if n > running {
        (n - running) / running * wave
    } else {
        0.0
    };
    let dp = wk.graph.parallel.dp as f64;
    finish(
        ttft_run + kv_queue,
        tpot,
        w,
        n * dp,
        wk.gpus(),
        running,
        kv_queue,
    )
}

/// One batch (per attention-DP rank) prefilled then decoded together (no arrivals in between).
pub fn static_batch(wk: &Worker, w: &Workload, batch: f64) -> Perf {
    let dp = wk.graph.parallel.dp as f64;
    let b = batch.max(1.0);
    let c = wk.calib;
    let chunks = (b * w.new_tokens() / wk.budget()).ceil().max(1.0);
    let ctx = wk.chunked_wall_ms(&Step::context(b, w.new_tokens(), w.prefix), b, chunks);
    let dec = wk.wall_ms(
        &Step::decode(b, w.isl + w.osl / 2.0, w.gen_tokens_per_req()),
        b,
    );
    let ttft = ctx + c.ttft_ms;
    finish(ttft, dec / w.progress(), w, b * dp, wk.gpus(), b, 0.0)
}

/// Disaggregated replica: `x` prefill workers feeding `y` decode workers.
pub struct DisaggResult {
    pub perf: Perf,
    pub prefill_seq_per_s_per_worker: f64,
    pub decode_seq_per_s_per_worker: f64,
    pub kv_transfer_ms: f64,
    pub prefill_queue_ms: f64,
}

/// One prefill worker serving batches of `batch` requests per attention-DP rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrefillSide {
    pub batch: f64,
    /// Time of one prefill batch (ms), host overhead included.
    pub batch_ms: f64,
    /// Requests one worker prefills per second.
    pub seq_per_s: f64,
    pub gpus: u32,
    pub memory: MemoryBreakdown,
}

/// One decode worker running `running` requests per attention-DP rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DecodeSide {
    pub batch: f64,
    pub running: f64,
    pub step_ms: f64,
    pub tpot_ms: f64,
    /// Requests one worker finishes per second.
    pub seq_per_s: f64,
    pub gpus: u32,
    pub memory: MemoryBreakdown,
}

pub fn prefill_side(pre: &Worker, w: &Workload, batch: f64) -> PrefillSide {
    let pb = batch.max(1.0);
    let s_new = w.new_tokens();
    let chunks = (pb * s_new / pre.budget()).ceil().max(1.0);
    let batch_ms = pre.chunked_wall_ms(&Step::context(pb, s_new, w.prefix), pb, chunks);
    PrefillSide {
        batch: pb,
        batch_ms,
        seq_per_s: pb * pre.graph.parallel.dp as f64 / batch_ms * 1000.0,
        gpus: pre.gpus(),
        memory: pre.memory(pb, w.isl + 1.0, pb * s_new),
    }
}

/// Decode: continuous batching at `batch` per attention-DP rank, capped by KV room.
pub fn decode_side(dec: &Worker, w: &Workload, batch: f64) -> DecodeSide {
    let b_rank = batch.max(1.0);
    let tpr = w.gen_tokens_per_req();
    let mem = dec.memory(b_rank, w.isl + w.osl, b_rank * tpr);
    let running = b_rank
        .min(mem.max_requests_by_kv.max(1.0))
        .min(dec.backend.max_running(dec.system));
    let kv_avg = w.isl + w.osl / 2.0;
    let step_ms = dec.wall_ms(&Step::decode(running, kv_avg, tpr), running);
    let tpot_ms = step_ms / w.progress();
    DecodeSide {
        batch: b_rank,
        running,
        step_ms,
        tpot_ms,
        seq_per_s: running * dec.graph.parallel.dp as f64 / (tpot_ms * (w.osl - 1.0).max(1.0))
            * 1000.0,
        gpus: dec.gpus(),
        memory: mem,
    }
}

/// KV hand-off, pipelined with the prefill layer by layer: the last layer's share and the link
/// latency stay exposed; the rest overlaps unless the link is slower than compute.
pub fn kv_transfer_ms(pre: &Worker, dec: &Worker, w: &Workload, prefill_batch_ms: f64) -> f64 {
    let kv_bytes = crate::memory::kv_bytes_per_seq(pre.model, &pre.graph, w.isl)
        * pre.graph.parallel.pp as f64;
    let same_domain = pre.system.name == dec.system.name
        && (pre.gpus() + dec.gpus()) <= pre.system.nvlink_domain()
        && pre.system.node.num_gpus_per_rack.is_some();
    let link_bw = if same_domain {
        pre.system.node.inter_node_bw
    } else {
        pre.system
            .node
            .inter_node_bw
            .min(pre.system.node.intra_node_bw)
    };
    let transfer_full = kv_bytes / link_bw * 1e3;
    let layers = pre.model.num_layers as f64;
    (transfer_full / layers).max(transfer_full - prefill_batch_ms)
        + pre.system.node.p2p_latency * 1e3
}

#[allow(clippy::too_many_arguments)]
pub fn disagg(
    pre: &Worker,
    dec: &Worker,
    w: &Workload,
    prefill_batch: f64,
    prefill_workers: u32,
    decode_batch: f64,
    decode_workers: u32,
    burst_waves: f64,
) -> DisaggResult {
    let p = prefill_side(pre, w, prefill_batch);
    let d = decode_side(dec, w, decode_batch);
    let kv = kv_transfer_ms(pre, dec, w, p.batch_ms);
    compose(
        &ComposeInput {
            prefill: &p,
            decode: &d,
            prefill_dp: pre.graph.parallel.dp,
            decode_dp: dec.graph.parallel.dp,
            ttft_overhead_ms: pre.calib.ttft_ms,
            kv_transfer_ms: kv,
            burst_waves,
        },
        w,
        prefill_workers,
        decode_workers,
    )
}

/// Everything `compose` needs about one (prefill, decode) worker pair; cheap to reuse over
/// many worker counts.
pub struct ComposeInput<'a> {
    pub prefill: &'a PrefillSide,
    pub decode: &'a DecodeSide,
    pub prefill_dp: u32,
    pub decode_dp: u32,
    pub ttft_overhead_ms: f64,
    pub kv_transfer_ms: f64,
    pub burst_waves: f64,
}

impl ComposeInput<'_> {
    /// TTFT of a request that never queues for prefill.
    pub fn unqueued_ttft_ms(&self) -> f64 {
        self.ttft_overhead_ms + self.prefill.batch_ms + self.kv_transfer_ms + self.decode.step_ms
    }

    /// Requests one decode worker finishes per second when prefill never queues.
    pub fn unqueued_rate_per_decode_worker(&self, w: &Workload) -> f64 {
        let d = self.decode;
        d.running * self.decode_dp as f64
            / (self.unqueued_ttft_ms() + w.decode_iterations() * d.step_ms)
            * 1000.0
    }
}

/// Closed loop over the replica's decode slots: requests arrive as fast as they finish, so
/// λ = N / latency, bounded by the prefill pool's capacity. When prefill is the bottleneck, the
/// surplus requests wait in the prefill queue (Little's law gives that wait).
pub fn compose(
    c: &ComposeInput,
    w: &Workload,
    prefill_workers: u32,
    decode_workers: u32,
) -> DisaggResult {
    let x = prefill_workers.max(1) as f64;
    let y = decode_workers.max(1) as f64;
    let (p, d) = (c.prefill, c.decode);
    let t_pre = p.batch_ms;
    let t_dec = d.step_ms;
    let n_total = d.running * c.decode_dp as f64 * y;
    let cap = p.seq_per_s * x;
    let d_iter = w.decode_iterations();
    let base = c.unqueued_ttft_ms();
    let unqueued = n_total / (base + d_iter * t_dec) * 1000.0;
    let mut lambda = unqueued.min(cap);
    let mut wait = 0.0;
    // A closed loop that would outrun the prefill pool saturates it: λ = capacity and the
    // surplus waits (Little's law, below). Below saturation, the open-loop queue wait applies.
    if unqueued < cap {
        for _ in 0..30 {
            let rho = (lambda / cap).min(0.95);
            // M/D/1 wait for a batch of service time `t_pre` at load ρ, spread over x servers
            // (the √x of the Kingman approximation for many servers); no fitted multiplier.
            wait = t_pre * rho / (2.0 * (1.0 - rho)) / x.sqrt();
            let next = (n_total / (base + wait + d_iter * t_dec) * 1000.0).min(cap);
            lambda = 0.5 * (lambda + next);
        }
    }
    let mut steady = base + wait;
    let closed = n_total / lambda * 1000.0 - d_iter * t_dec;
    if closed > steady {
        steady = closed;
    }
    // First wave: every decode slot's request arrives at once and queues on the prefill pool.
    let rounds = (n_total / (p.batch * c.prefill_dp as f64 * x))
        .ceil()
        .max(1.0);
    let burst = c.ttft_overhead_ms + t_pre * (rounds + 1.0) / 2.0 + c.kv_transfer_ms + t_dec;
    let waves = c.burst_waves.max(1.0);
    let ttft = (burst.max(steady) + (waves - 1.0) * steady) / waves;
    let gpus = (x as u32) * p.gpus + (y as u32) * d.gpus;
    let mut perf = finish(ttft, d.tpot_ms, w, n_total, gpus, d.running, 0.0);
    // Throughput is the matched rate of the two pools.
    perf.request_rate = lambda;
    perf.tokens_per_s = lambda * w.osl;
    perf.tokens_per_s_per_gpu = perf.tokens_per_s / gpus as f64;
    DisaggResult {
        perf,
        prefill_seq_per_s_per_worker: p.seq_per_s,
        decode_seq_per_s_per_worker: d.seq_per_s,
        kv_transfer_ms: c.kv_transfer_ms,
        prefill_queue_ms: wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;
    use crate::model::ModelRegistry;
    use crate::perf::SolSource;

    #[test]
    fn mixed_step_mean_is_over_whole_arrivals() {
        // A step with any prefill pays a fixed 5 ms on top of 1 ms per prefilled prompt (the
        // shape of a MoE step, which reads every expert once any prompt rides along).
        let step = |k: f64, _tokens: f64| 10.0 + 5.0 + k;
        // A quarter of the steps carry one prompt: 0.75·10 + 0.25·16.
        assert!((mean_mixed_step(0.25, 100.0, 1000.0, 10.0, &step) - 11.5).abs() < 1e-12);
        // 1.5 prompts per step: half the steps carry one, half two.
        assert!((mean_mixed_step(1.5, 100.0, 1000.0, 10.0, &step) - 16.5).abs() < 1e-12);
        // A 3000-token prompt on a 1000-token budget: 0.2 prompts are 0.6 budget-sized chunks.
        assert!((mean_mixed_step(0.2, 3000.0, 1000.0, 10.0, &step) - 13.6).abs() < 1e-12);
        assert_eq!(mean_mixed_step(0.0, 100.0, 1000.0, 10.0, &step), 10.0);
    }

    #[test]
    fn sglang_waves_put_the_prefill_burst_in_ttft() {
        let m = ModelRegistry::builtin().resolve("QWEN3_32B").unwrap();
        let sys = SystemRegistry::builtin().get("h100_sxm").unwrap().clone();
        let calib = BackendCalib::ZERO;
        let p = Parallel {
            tp: 2,
            ..Parallel::single()
        };
        let q = QuantConfig::default();
        let wk = Worker::new(
            &m,
            &p,
            &q,
            &sys,
            Backend::Sglang,
            calib,
            &SolSource,
            None,
            0,
        )
        .unwrap();
        let w = Workload {
            isl: 4096.0,
            osl: 129.0,
            prefix: 0.0,
            nextn: 0,
            nextn_accepted: 0.0,
        };
        let perf = agg(&wk, &w, 16.0, 1.0);
        // Budget 8192 tokens on an 80 GB GPU: two 4096-token prompts per prefill step, 8 groups.
        let t_group = wk.step_ms(&Step::context(2.0, 4096.0, 0.0));
        let t_dec = wk.step_ms(&Step::decode(16.0, 4096.0 + 64.5, 1.0));
        assert!(
            (perf.ttft_ms - t_group * 9.0 / 2.0).abs() < 1e-6,
            "{}",
            perf.ttft_ms
        );
        let decode = 128.0 * t_dec + t_group * 7.0 / 2.0;
        assert!((perf.tpot_ms - decode / 128.0).abs() < 1e-6);
    }

    #[test]
    fn uncaptured_steps_take_at_least_their_launches() {
        let m = ModelRegistry::builtin().resolve("LLAMA3.1_8B").unwrap();
        let sys = SystemRegistry::builtin().get("h100_sxm").unwrap().clone();
        let calib = BackendCalib {
            launch_us: 50.0,
            ..BackendCalib::ZERO
        };
        let q = QuantConfig::default();
        let wk = |b| {
            Worker::new(
                &m,
                &Parallel::single(),
                &q,
                &sys,
                b,
                calib,
                &SolSource,
                None,
                0,
            )
        };
        let (trt, vllm) = (wk(Backend::Trtllm).unwrap(), wk(Backend::Vllm).unwrap());
        // One 128-token prompt: 32 layers of 8 ops with work (two norms, QKV, attention,
        // output projection, gate/up, activation, down; the all-reduces are empty at tp 1)
        // plus embedding, final norm and LM head: 32·8 + 3 = 259 launches, 12.95 ms at 50 µs,
        // far above the roofline's GPU time.
        let pre = Step::context(1.0, 128.0, 0.0);
        let gpu = price_step(&trt.graph, &sys, &SolSource, &pre, 1.0, false);
        assert_eq!(gpu.launches, 259.0);
        assert!(gpu.total_ms < 12.95);
        assert!((trt.step_ms(&pre) - 12.95).abs() < 1e-9);
        // vLLM replays a 128-token step from its piecewise graphs; above 512 tokens it launches.
        assert_eq!(vllm.step_ms(&pre), gpu.total_ms);
        let long = Step::context(1.0, 1024.0, 0.0);
        let long_gpu = price_step(&vllm.graph, &sys, &SolSource, &long, 1.0, false).total_ms;
        assert!((vllm.step_ms(&long) - long_gpu.max(12.95)).abs() < 1e-9);
        // Pure decode steps are graphed everywhere.
        let dec = Step::decode(8.0, 1000.0, 1.0);
        let dec_gpu = price_step(&trt.graph, &sys, &SolSource, &dec, 1.0, false).total_ms;
        assert_eq!(trt.step_ms(&dec), dec_gpu);
    }
}
