//! Request-level discrete-event simulation of one deployment.
//!
//! Each engine (an aggregated worker, or a prefill or decode worker of a disaggregated
//! replica) runs iterations the way its framework's scheduler builds them (`scheduler.rs`):
//! which decodes and prefill chunks share an iteration, how many tokens and requests it may
//! hold, when KV room admits a request and what happens when it runs out. Every iteration is
//! priced by `Worker::step_ms` (GPU time) plus the framework's host time per iteration, and
//! each request pays the API path (HTTP, tokenisation) before the scheduler sees it — the same
//! fitted host constants (`BackendCalib`: `step_ms`, `req_us`, `ttft_ms`) and the same rule
//! (`BackendCalib::step_wall_ms`) as the closed form; its `wait_steps` is what this simulation
//! plays out step by step, so it is not used here. Loads
//! (`load.rs`) are closed loops, open loops at a rate, offline batches and traces; statistics
//! (`stats.rs`) are bounded histograms, so memory grows with requests in flight only.
mod load;
mod scheduler;
mod stats;

pub use load::{parse_trace, LengthDist, Load, SimRng, TraceRequest};
pub use scheduler::{Policy, Role};
pub use stats::{Dist, SeriesPoint};

use crate::error::{AicfgError, Result};
use crate::perf::BackendCalib;
use crate::serve::{kv_transfer_ms, Worker, Workload};
use scheduler::{blocks, Rank, Req, StepCost};
use serde::Serialize;
use stats::{Histogram, Series};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Largest simulated request count and engine iterations (inputs are user-sized).
pub const MAX_REQUESTS: u32 = 2_000_000;
const MAX_STEPS: u64 = 50_000_000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSpec {
    pub load: Load,
    /// Requests measured plus warm-up (a trace brings its own count).
    pub num_requests: u32,
    /// The first requests sent, left out of the statistics as benchmark clients do.
    pub warmup: u32,
    pub isl_dist: LengthDist,
    pub osl_dist: LengthDist,
    pub seed: u64,
    /// Goodput counts requests with TTFT and TPOT within these (ms).
    pub sla: Option<(f64, f64)>,
    /// Overrides of the scheduler's token budget and running-request cap (per rank).
    pub max_num_tokens: Option<u32>,
    pub max_batch_size: Option<u32>,
    /// Steps between the scheduler's polls for new requests (SGLang
    /// `--scheduler-recv-interval`); 1 = every step.
    pub recv_interval: u32,
    /// Points kept in the time series.
    pub series_points: usize,
}

impl SimSpec {
    pub fn new(load: Load, num_requests: u32) -> Self {
        SimSpec {
            load,
            num_requests,
            warmup: 0,
            isl_dist: LengthDist::Fixed,
            osl_dist: LengthDist::Fixed,
            seed: 0,
            sla: None,
            max_num_tokens: None,
            max_batch_size: None,
            recv_interval: 1,
            series_points: 256,
        }
    }

    fn total(&self) -> u32 {
        match &self.load {
            Load::Trace(t) => t.len().min(MAX_REQUESTS as usize) as u32,
            _ => self.num_requests,
        }
    }

    fn validate(&self) -> Result<()> {
        let n = self.total();
        if n == 0 || n > MAX_REQUESTS {
            return Err(AicfgError::invalid(
                "num requests",
                format!("must be between 1 and {MAX_REQUESTS}, got {n}"),
            ));
        }
        if !(1..=MAX_RECV_INTERVAL).contains(&self.recv_interval) {
            return Err(AicfgError::invalid(
                "recv interval",
                format!(
                    "must be between 1 and {MAX_RECV_INTERVAL} scheduler steps, got {}",
                    self.recv_interval
                ),
            ));
        }
        if self.warmup >= n {
            return Err(AicfgError::invalid(
                "warm-up requests",
                format!("{} must be fewer than the {n} requests", self.warmup),
            ));
        }
        match &self.load {
            Load::Concurrency(c) if *c == 0 || *c > 1_000_000 => Err(AicfgError::invalid(
                "concurrency",
                format!("must be between 1 and 1000000, got {c}"),
            )),
            Load::Rate { rate, .. } if !(rate.is_finite() && *rate > 0.0 && *rate <= 1e6) => {
                Err(AicfgError::invalid(
                    "request rate",
                    format!("must be a positive number of requests/s (≤ 1e6), got {rate}"),
                ))
            }
            _ => {
                for (what, v) in [
                    ("max num tokens", self.max_num_tokens),
                    ("max batch size", self.max_batch_size),
                ] {
                    if v == Some(0) {
                        return Err(AicfgError::invalid(what, "must be at least 1"));
                    }
                }
                Ok(())
            }
        }
    }
}

/// What a simulation measured (warm-up excluded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub itl_ms: Dist,
    pub e2e_ms: Dist,
    /// Output tokens per second of the deployment.
    pub tokens_per_s: f64,
    /// Input plus output tokens per second.
    pub total_tokens_per_s: f64,
    pub tokens_per_s_per_gpu: f64,
    /// 1000 / mean TPOT.
    pub tokens_per_s_per_user: f64,
    pub request_rate: f64,
    /// Requests per second that met the SLA (all of them when no SLA is given).
    pub goodput: f64,
    /// Mean (time-weighted) and peak share of the KV cache in use on decoding engines.
    pub kv_utilization: f64,
    pub kv_utilization_peak: f64,
    pub preemptions: u64,
    pub measured_requests: u32,
    pub duration_ms: f64,
    pub iterations: u64,
    pub num_gpus: u32,
    pub series: Vec<SeriesPoint>,
}

/// Replica shape of a disaggregated simulation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DisaggLayout {
    pub prefill_workers: u32,
    /// Requests per prefill iteration per attention-DP rank.
    pub prefill_batch: u32,
    pub decode_workers: u32,
    /// Running requests per decode attention-DP rank.
    pub decode_batch: u32,
}

struct Engine {
    role: Role,
    policy: Policy,
    ranks: Vec<Rank>,
    cost: usize,
    busy: bool,
    kicked: bool,
    step_start: f64,
    last_step_ms: f64,
    kv_weighted: f64,
    kv_time: f64,
    /// Steps started, for the scheduler's request polls.
    steps: u64,
}

const GONE: u32 = u32::MAX;

/// Largest scheduler poll interval accepted (steps): SGLang recipes use up to a few tens.
pub const MAX_RECV_INTERVAL: u32 = 1000;

struct Sim<'a> {
    w: Workload,
    spec: &'a SimSpec,
    host: BackendCalib,
    reqs: Vec<Req>,
    state: Vec<u32>,
    free: Vec<u32>,
    /// Slots of requests finished in the iteration being applied; reusable after it.
    freed: Vec<u32>,
    engines: Vec<Engine>,
    costs: Vec<StepCost<'a>>,
    link_free: Vec<f64>,
    xfer: Option<(&'a Worker<'a>, &'a Worker<'a>)>,
    heap: BinaryHeap<Reverse<(u64, u8, u64, u32)>>,
    seq: u64,
    rng: SimRng,
    mtp_q: f64,
    issued: u32,
    total: u32,
    done: u32,
    steps: u64,
    preemptions: u64,
    t_first: f64,
    t_last: f64,
    h_ttft: Histogram,
    h_tpot: Histogram,
    h_itl: Histogram,
    h_e2e: Histogram,
    out_tokens: f64,
    in_tokens: f64,
    good: u32,
    kv_peak: f64,
    series: Series,
    err: Option<AicfgError>,
}

// Same-time events: arrivals and hand-offs first, so an iteration that starts at that time
// (a kick) sees every request that arrived with it.
const EV_ARRIVE: u8 = 0;
const EV_JOIN: u8 = 1;
const EV_DONE: u8 = 2;
const EV_KICK: u8 = 3;

/// Per-draft acceptance probability `q` whose chain Σ_{k=1..n} q^k has the given mean.
fn acceptance_prob(nextn: u32, mean: f64) -> f64 {
    if nextn == 0 || mean <= 0.0 {
        return 0.0;
    }
    let f = |q: f64| (1..=nextn).map(|k| q.powi(k as i32)).sum::<f64>();
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..60 {
        let m = 0.5 * (lo + hi);
        if f(m) < mean {
            lo = m
        } else {
            hi = m
        }
    }
    0.5 * (lo + hi)
}

/// KV tokens one attention-DP rank of `wk` holds, at the workload's longest sequence.
fn kv_capacity_tokens(wk: &Worker, w: &Workload, budget: f64) -> u64 {
    let seq = w.isl + w.osl;
    let mem = wk.memory(1.0, seq, budget);
    let n = mem.max_requests_by_kv;
    if !n.is_finite() {
        return u64::MAX / 4;
    }
    (n.max(0.0) * seq) as u64
}

impl<'a> Sim<'a> {
    fn new(w: &Workload, spec: &'a SimSpec, host: &BackendCalib) -> Self {
        Sim {
            w: *w,
            spec,
            host: *host,
            reqs: Vec::new(),
            state: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
            engines: Vec::new(),
            costs: Vec::new(),
            link_free: Vec::new(),
            xfer: None,
            heap: BinaryHeap::new(),
            seq: 0,
            rng: SimRng::new(spec.seed),
            mtp_q: acceptance_prob(w.nextn, w.nextn_accepted),
            issued: 0,
            total: spec.total(),
            done: 0,
            steps: 0,
            preemptions: 0,
            t_first: f64::INFINITY,
            t_last: 0.0,
            h_ttft: Histogram::default(),
            h_tpot: Histogram::default(),
            h_itl: Histogram::default(),
            h_e2e: Histogram::default(),
            out_tokens: 0.0,
            in_tokens: 0.0,
            good: 0,
            kv_peak: 0.0,
            series: Series::new(spec.series_points),
            err: None,
        }
    }

    fn add_engine(&mut self, role: Role, policy: Policy, dp: u32, cost: usize, kv_cap: u64) {
        let ranks = (0..dp.max(1))
            .map(|_| Rank {
                kv_cap,
                ..Default::default()
            })
            .collect();
        self.engines.push(Engine {
            role,
            policy,
            ranks,
            cost,
            busy: false,
            kicked: false,
            step_start: 0.0,
            last_step_ms: 0.0,
            kv_weighted: 0.0,
            kv_time: 0.0,
            steps: 0,
        });
    }

    fn push(&mut self, t: f64, kind: u8, id: u32) {
        self.seq += 1;
        self.heap
            .push(Reverse((t.max(0.0).to_bits(), kind, self.seq, id)));
    }

    /// The client sends request number `self.issued` at `t`.
    fn issue(&mut self, t: f64) {
        if self.issued >= self.total {
            return;
        }
        let k = self.issued as usize;
        self.issued += 1;
        let cap = 10_000_000;
        let (isl, osl) = match &self.spec.load {
            Load::Trace(tr) => (tr[k].isl, tr[k].osl),
            _ => (
                self.spec.isl_dist.draw(self.w.isl, &mut self.rng, cap),
                self.spec.osl_dist.draw(self.w.osl, &mut self.rng, cap),
            ),
        };
        let prefix = (self.w.prefix.round() as u32).min(isl - 1);
        let r = Req {
            sent: t,
            isl,
            osl,
            prefix,
            to_prefill: isl - prefix,
            prefilled: 0,
            generated: 0,
            kv: 0,
            first: -1.0,
            last: -1.0,
            measured: k as u32 >= self.spec.warmup,
        };
        if r.measured {
            self.t_first = self.t_first.min(t);
        }
        let id = match self.free.pop() {
            Some(i) => {
                self.reqs[i as usize] = r;
                i
            }
            None => {
                self.reqs.push(r);
                self.state.push(0);
                (self.reqs.len() - 1) as u32
            }
        };
        self.state[id as usize] = 0;
        self.push(t + self.host.ttft_ms, EV_ARRIVE, id);
    }

    /// Least-loaded rank among engines of `role`.
    fn route(&self, role: Role) -> (usize, usize) {
        let mut best = (usize::MAX, 0, 0);
        for (e, eng) in self.engines.iter().enumerate() {
            if eng.role != role {
                continue;
            }
            for (r, rank) in eng.ranks.iter().enumerate() {
                let l = rank.load();
                if l < best.0 {
                    best = (l, e, r);
                }
            }
        }
        (best.1, best.2)
    }

    fn enqueue(&mut self, id: u32, role: Role, t: f64) {
        let (e, r) = self.route(role);
        let need = {
            let q = &self.reqs[id as usize];
            blocks((q.isl + q.osl) as u64, self.engines[e].policy.block_tokens)
        };
        if need > self.engines[e].ranks[r].kv_cap && self.err.is_none() {
            self.err = Some(AicfgError::invalid(
                "workload",
                format!(
                    "a request of {} tokens does not fit the KV cache of one rank ({} tokens)",
                    need, self.engines[e].ranks[r].kv_cap
                ),
            ));
            return;
        }
        // A busy scheduler that polls every N steps sees the request at its next poll.
        let eng = &mut self.engines[e];
        if eng.busy && eng.policy.recv_interval > 1 {
            eng.ranks[r].inbox.push_back(id);
        } else {
            eng.ranks[r].waiting.push_back(id);
        }
        if !self.engines[e].busy && !self.engines[e].kicked {
            self.engines[e].kicked = true;
            self.push(t, EV_KICK, e as u32);
        }
    }

    fn plan_rank(
        rank: &mut Rank,
        reqs: &mut [Req],
        pol: &Policy,
        role: Role,
        tpr: u32,
        preemptions: &mut u64,
    ) {
        rank.ctx.clear();
        rank.dec.clear();
        let full = pol.reserve_full || role != Role::Agg;
        if !full {
            // Blocks are taken as decodes grow; when they run out the newest request is
            // preempted and recomputed later.
            let want = |q: &Req| blocks((q.isl + q.generated + tpr) as u64, pol.block_tokens);
            let mut deficit: u64 = rank
                .running
                .iter()
                .map(|&i| want(&reqs[i as usize]).saturating_sub(reqs[i as usize].kv as u64))
                .sum();
            while rank.kv_used + deficit > rank.kv_cap && rank.running.len() > 1 {
                let v = rank.running.pop().expect("more than one running");
                let q = &mut reqs[v as usize];
                deficit -= want(q).saturating_sub(q.kv as u64);
                rank.kv_used -= q.kv as u64;
                q.kv = 0;
                q.to_prefill = q.isl - q.prefix + q.generated;
                q.prefilled = 0;
                rank.waiting.push_front(v);
                *preemptions += 1;
            }
            if deficit > 0 {
                for &i in &rank.running {
                    let q = &mut reqs[i as usize];
                    let w = want(q);
                    if w > q.kv as u64 {
                        rank.kv_used += w - q.kv as u64;
                        q.kv = w as u32;
                    }
                }
            }
        }
        let mixed = pol.mixed || role == Role::Decode;
        let mut budget = pol.token_budget as i64;
        if role != Role::Prefill {
            for &i in &rank.running {
                if reqs[i as usize].decoding() {
                    rank.dec.push(i);
                }
            }
            if mixed {
                budget -= (rank.dec.len() as i64) * tpr as i64;
            }
        }
        let idle =
            |ctx: &Vec<(u32, u32)>, dec: &Vec<u32>| ctx.is_empty() && (dec.is_empty() || !mixed);
        if role != Role::Decode {
            for &i in &rank.running {
                let q = &reqs[i as usize];
                if q.decoding() {
                    continue;
                }
                let rest = (q.to_prefill - q.prefilled) as i64;
                let take = if pol.chunked {
                    rest.min(budget.max(0))
                } else if rest <= budget || idle(&rank.ctx, &rank.dec) {
                    rest
                } else {
                    0
                };
                if take > 0 {
                    rank.ctx.push((i, take as u32));
                    budget -= take;
                }
            }
        }
        // Admission, first come first served: stops at the first request that does not fit.
        while let Some(&i) = rank.waiting.front() {
            if rank.running.len() >= pol.max_running as usize {
                break;
            }
            let q = &reqs[i as usize];
            let rest = (q.to_prefill - q.prefilled) as i64;
            if role != Role::Decode {
                if pol.chunked && budget <= 0 {
                    break;
                }
                if !pol.chunked && rest > budget && !idle(&rank.ctx, &rank.dec) {
                    break;
                }
            }
            let need = match role {
                Role::Prefill => blocks(q.isl as u64, pol.block_tokens),
                _ if full => blocks((q.isl + q.osl) as u64, pol.block_tokens),
                _ => blocks((q.isl + q.generated + 1) as u64, pol.block_tokens),
            };
            if rank.kv_used + need > rank.kv_cap {
                break;
            }
            rank.waiting.pop_front();
            rank.running.push(i);
            rank.kv_used += need;
            reqs[i as usize].kv = need as u32;
            if role == Role::Decode {
                rank.dec.push(i);
            } else {
                let take = if pol.chunked { rest.min(budget) } else { rest };
                rank.ctx.push((i, take as u32));
                budget -= take;
            }
        }
        if !mixed && !rank.ctx.is_empty() {
            rank.dec.clear();
        }
    }

    fn start_step(&mut self, e: usize, t: f64) {
        if self.engines[e].busy || self.err.is_some() {
            return;
        }
        let tpr = 1 + self.w.nextn;
        let mut dur: f64 = 0.0;
        let mut any = false;
        let (mut used, mut cap) = (0u64, 0u64);
        let eng = &mut self.engines[e];
        let cost = &mut self.costs[eng.cost];
        let poll = eng
            .steps
            .is_multiple_of(u64::from(eng.policy.recv_interval.max(1)));
        eng.steps += 1;
        for rank in eng.ranks.iter_mut() {
            if poll || rank.running.is_empty() {
                rank.waiting.extend(rank.inbox.drain(..));
            }
            Self::plan_rank(
                rank,
                &mut self.reqs,
                &eng.policy,
                eng.role,
                tpr,
                &mut self.preemptions,
            );
            used += rank.kv_used;
            cap = cap.saturating_add(rank.kv_cap);
            let (nc, nd) = (rank.ctx.len(), rank.dec.len());
            if nc + nd == 0 {
                continue;
            }
            any = true;
            let (mut tok, mut pre) = (0.0, 0.0);
            for &(i, k) in &rank.ctx {
                let q = &self.reqs[i as usize];
                tok += k as f64;
                pre += (q.prefix + q.prefilled) as f64;
            }
            let mut kv = 0.0;
            for &i in &rank.dec {
                let q = &mut self.reqs[i as usize];
                kv += (q.isl + q.generated) as f64;
                if q.first < 0.0 {
                    // Disagg: the first token (from prefill) streams when decode picks it up.
                    q.first = t;
                    q.last = t;
                }
            }
            let ncf = nc.max(1) as f64;
            let gpu = cost.gpu_ms(
                nc as u32,
                tok / ncf,
                pre / ncf,
                nd as u32,
                kv / nd.max(1) as f64,
            );
            dur = dur.max(self.host.step_wall_ms(gpu, (nc + nd) as f64));
        }
        if !any {
            eng.busy = false;
            return;
        }
        eng.busy = true;
        eng.step_start = t;
        eng.last_step_ms = dur;
        if eng.role != Role::Prefill && cap > 0 {
            let u = used as f64 / cap as f64;
            eng.kv_weighted += u * dur;
            eng.kv_time += dur;
            self.kv_peak = self.kv_peak.max(u);
        }
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.err = Some(AicfgError::invalid(
                "simulation",
                format!("more than {MAX_STEPS} engine iterations; simulate fewer requests"),
            ));
            return;
        }
        self.push(t + dur, EV_DONE, e as u32);
    }

    fn draw_accepted(&mut self) -> u32 {
        let mut a = 0;
        while a < self.w.nextn && self.rng.unit() < self.mtp_q {
            a += 1;
        }
        a
    }

    fn finish(&mut self, id: u32, t: f64) {
        let q = self.reqs[id as usize];
        self.state[id as usize] = GONE;
        self.freed.push(id);
        self.done += 1;
        if q.measured {
            let ttft = q.first - q.sent;
            let e2e = t - q.sent;
            let tpot = if q.osl > 1 {
                (t - q.first) / (q.osl - 1) as f64
            } else {
                0.0
            };
            self.h_ttft.add(ttft);
            self.h_e2e.add(e2e);
            if q.osl > 1 {
                self.h_tpot.add(tpot);
            }
            self.out_tokens += q.osl as f64;
            self.in_tokens += q.isl as f64;
            self.t_last = self.t_last.max(t);
            if self
                .spec
                .sla
                .is_none_or(|(a, b)| ttft <= a && (q.osl <= 1 || tpot <= b))
            {
                self.good += 1;
            }
            let (mut queued, mut running) = (0u32, 0u32);
            for eng in &self.engines {
                for r in &eng.ranks {
                    queued += r.waiting.len() as u32;
                    running += r.running.len() as u32;
                }
            }
            self.series.push(SeriesPoint {
                t_ms: t,
                ttft_ms: ttft,
                queued,
                running,
            });
        }
        if matches!(self.spec.load, Load::Concurrency(_)) {
            self.issue(t);
        }
    }

    fn step_done(&mut self, e: usize, t: f64) {
        let role = self.engines[e].role;
        let step_ms = self.engines[e].last_step_ms;
        let nranks = self.engines[e].ranks.len();
        for r in 0..nranks {
            let ctx = std::mem::take(&mut self.engines[e].ranks[r].ctx);
            let dec = std::mem::take(&mut self.engines[e].ranks[r].dec);
            let mut left = false;
            for &(i, k) in &ctx {
                let q = &mut self.reqs[i as usize];
                q.prefilled += k;
                if !q.decoding() {
                    continue;
                }
                match role {
                    Role::Prefill => {
                        q.generated = q.generated.max(1);
                        let kv = q.kv as u64;
                        q.kv = 0;
                        let isl = q.isl;
                        self.state[i as usize] = 1;
                        left = true;
                        self.engines[e].ranks[r].kv_used -= kv;
                        let join = self.transfer_done(e, isl, t, step_ms);
                        self.push(join, EV_JOIN, i);
                    }
                    _ => {
                        if q.generated == 0 {
                            q.first = t;
                        } else {
                            // Recomputed after a preemption: the prefill also samples a token.
                            if q.measured {
                                self.h_itl.add(t - q.last);
                            }
                        }
                        q.generated += 1;
                        q.last = t;
                        if q.generated >= q.osl {
                            left = true;
                            self.release(e, r, i);
                            self.finish(i, t);
                        }
                    }
                }
            }
            // Most decodes of one iteration share the same gap: add equal gaps in one go.
            let (mut gap, mut run) = (0.0f64, 0u64);
            for &i in &dec {
                let a = self.draw_accepted();
                let q = &mut self.reqs[i as usize];
                let emit = (1 + a).min(q.osl - q.generated.min(q.osl));
                q.generated += emit;
                if q.measured {
                    let g = t - q.last;
                    if g.to_bits() != gap.to_bits() {
                        self.h_itl.add_n(gap, run);
                        (gap, run) = (g, 0);
                    }
                    run += 1;
                }
                q.last = t;
                if q.generated >= q.osl {
                    left = true;
                    self.release(e, r, i);
                    self.finish(i, t);
                }
            }
            self.h_itl.add_n(gap, run);
            if left {
                let state = &self.state;
                self.engines[e].ranks[r]
                    .running
                    .retain(|&i| state[i as usize] == 0);
                for &(i, _) in &ctx {
                    if role == Role::Prefill && self.state[i as usize] == 1 {
                        self.state[i as usize] = 0;
                    }
                }
            }
            self.engines[e].ranks[r].ctx = ctx;
            self.engines[e].ranks[r].dec = dec;
        }
        self.free.append(&mut self.freed);
        self.engines[e].busy = false;
        self.start_step(e, t);
    }

    fn release(&mut self, e: usize, r: usize, i: u32) {
        let q = &mut self.reqs[i as usize];
        self.engines[e].ranks[r].kv_used -= q.kv as u64;
        q.kv = 0;
    }

    /// When the KV of a request prefilled by engine `e` has reached the decode pool: sent layer
    /// by layer during the prefill, one transfer at a time per prefill worker's link.
    fn transfer_done(&mut self, e: usize, isl: u32, t: f64, step_ms: f64) -> f64 {
        let Some((pre, dec)) = self.xfer else {
            return t;
        };
        let w = Workload {
            isl: isl as f64,
            ..self.w
        };
        let full = kv_transfer_ms(pre, dec, &w, 0.0);
        let exposed = kv_transfer_ms(pre, dec, &w, step_ms);
        let start = self.link_free[e].max(t - step_ms);
        let done = (t + exposed).max(start + full);
        self.link_free[e] = done;
        done
    }

    fn run(&mut self) -> Result<()> {
        match self.spec.load.clone() {
            Load::Concurrency(c) => {
                for _ in 0..c.min(self.total) {
                    self.issue(0.0);
                }
            }
            Load::Offline => {
                for _ in 0..self.total {
                    self.issue(0.0);
                }
            }
            Load::Rate { .. } | Load::Trace(_) => self.issue(0.0),
        }
        let first_role = if self.engines.iter().any(|e| e.role == Role::Prefill) {
            Role::Prefill
        } else {
            Role::Agg
        };
        while let Some(Reverse((tb, kind, _, id))) = self.heap.pop() {
            if let Some(e) = self.err.take() {
                return Err(e);
            }
            let t = f64::from_bits(tb);
            match kind {
                EV_ARRIVE => {
                    self.next_open_loop(id);
                    self.enqueue(id, first_role, t);
                }
                EV_DONE => self.step_done(id as usize, t),
                EV_KICK => {
                    self.engines[id as usize].kicked = false;
                    self.start_step(id as usize, t)
                }
                _ => self.enqueue(id, Role::Decode, t),
            }
        }
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        if self.done < self.total {
            return Err(AicfgError::invalid(
                "simulation",
                format!(
                    "{} of {} requests never finished (no KV room or no running slot)",
                    self.total - self.done,
                    self.total
                ),
            ));
        }
        Ok(())
    }

    /// Open loops send the next request when the previous one goes out.
    fn next_open_loop(&mut self, id: u32) {
        let sent = self.reqs[id as usize].sent;
        match &self.spec.load {
            Load::Rate { rate, poisson } => {
                let per_ms = rate / 1e3;
                let gap = if *poisson {
                    self.rng.exp_gap(per_ms)
                } else {
                    1.0 / per_ms
                };
                self.issue(sent + gap);
            }
            Load::Trace(tr) => {
                if let Some(next) = tr.get(self.issued as usize) {
                    let at = next.arrival_ms;
                    self.issue(at);
                }
            }
            _ => {}
        }
    }

    fn report(&self, gpus: u32) -> SimReport {
        let n = self.h_e2e.count() as u32;
        let dur = (self.t_last - self.t_first).max(1e-9);
        let per_s = 1000.0 / dur;
        let tokens = self.out_tokens * per_s;
        let (mut kw, mut kt) = (0.0, 0.0);
        for e in &self.engines {
            kw += e.kv_weighted;
            kt += e.kv_time;
        }
        let tpot = self.h_tpot.dist();
        SimReport {
            ttft_ms: self.h_ttft.dist(),
            tpot_ms: tpot,
            itl_ms: self.h_itl.dist(),
            e2e_ms: self.h_e2e.dist(),
            tokens_per_s: tokens,
            total_tokens_per_s: (self.out_tokens + self.in_tokens) * per_s,
            tokens_per_s_per_gpu: tokens / gpus.max(1) as f64,
            tokens_per_s_per_user: if tpot.mean > 0.0 {
                1000.0 / tpot.mean
            } else {
                0.0
            },
            request_rate: n as f64 * per_s,
            goodput: self.good as f64 * per_s,
            kv_utilization: if kt > 0.0 { kw / kt } else { 0.0 },
            kv_utilization_peak: self.kv_peak,
            preemptions: self.preemptions,
            measured_requests: n,
            duration_ms: dur,
            iterations: self.steps,
            num_gpus: gpus,
            series: self.series.points.clone(),
        }
    }
}

fn policy_for(wk: &Worker, spec: &SimSpec) -> Policy {
    let offline = matches!(spec.load, Load::Offline);
    // The backend's defaults for this load; a budget the worker was given overrides them.
    let mut p = Policy::for_backend(wk.backend, wk.system, offline);
    if let Some(t) = wk.token_budget {
        p.token_budget = t.clamp(1.0, u32::MAX as f64) as u32;
    }
    if let Some(t) = spec.max_num_tokens {
        p.token_budget = t;
    }
    if let Some(b) = spec.max_batch_size {
        p.max_running = b;
    }
    p.recv_interval = spec.recv_interval.max(1);
    p
}

/// Simulate one aggregated worker under `spec`'s load.
pub fn simulate_agg(
    wk: &Worker,
    w: &Workload,
    spec: &SimSpec,
    host: &BackendCalib,
) -> Result<SimReport> {
    w.validate()?;
    spec.validate()?;
    let mut sim = Sim::new(w, spec, host);
    let pol = policy_for(wk, spec);
    sim.costs.push(StepCost::new(wk, (1 + w.nextn) as f64));
    let cap = kv_capacity_tokens(wk, w, pol.token_budget as f64);
    sim.add_engine(Role::Agg, pol, wk.graph.parallel.dp, 0, cap);
    sim.run()?;
    Ok(sim.report(wk.gpus()))
}

/// Simulate one disaggregated replica: prefill workers, KV hand-off, decode workers.
pub fn simulate_disagg<'a>(
    pre: &'a Worker<'a>,
    dec: &'a Worker<'a>,
    w: &Workload,
    layout: &DisaggLayout,
    spec: &'a SimSpec,
    host: &BackendCalib,
) -> Result<SimReport> {
    w.validate()?;
    spec.validate()?;
    for (what, v) in [
        ("prefill workers", layout.prefill_workers),
        ("prefill batch size", layout.prefill_batch),
        ("decode workers", layout.decode_workers),
        ("decode batch size", layout.decode_batch),
    ] {
        if v == 0 || v > 1_000_000 {
            return Err(AicfgError::invalid(
                what,
                format!("must be between 1 and 1000000, got {v}"),
            ));
        }
    }
    let mut sim = Sim::new(w, spec, host);
    sim.xfer = Some((pre, dec));
    sim.costs.push(StepCost::new(pre, 1.0));
    sim.costs.push(StepCost::new(dec, (1 + w.nextn) as f64));
    let mut pp = policy_for(pre, spec);
    let s_new = (w.isl - w.prefix).max(1.0);
    // A prefill worker's token budget holds its whole batch of prompts.
    pp.token_budget = pp
        .token_budget
        .max((layout.prefill_batch as f64 * s_new).min(u32::MAX as f64) as u32);
    pp.max_running = layout.prefill_batch;
    let mut dp = policy_for(dec, spec);
    dp.max_running = layout
        .decode_batch
        .min(dp.max_running.max(layout.decode_batch));
    let pcap = kv_capacity_tokens(pre, w, pp.token_budget as f64);
    let dcap = kv_capacity_tokens(dec, w, dp.token_budget as f64);
    for _ in 0..layout.prefill_workers {
        sim.add_engine(Role::Prefill, pp, pre.graph.parallel.dp, 0, pcap);
        sim.link_free.push(0.0);
    }
    for _ in 0..layout.decode_workers {
        sim.add_engine(Role::Decode, dp, dec.graph.parallel.dp, 1, dcap);
    }
    sim.run()?;
    let gpus = layout.prefill_workers.saturating_mul(pre.gpus())
        + layout.decode_workers.saturating_mul(dec.gpus());
    Ok(sim.report(gpus))
}

#[cfg(test)]
mod tests;
