//! Per-backend schedulers as data: what one engine iteration may hold, how KV is reserved,
//! and the host time of an iteration. The event loop in `mod.rs` drives them.
use crate::backend::Backend;
use crate::hardware::SystemSpec;
use crate::perf::Step;
use crate::serve::Worker;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// One framework's scheduler defaults (each from its documented defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policy {
    /// Tokens one iteration may process (TRT-LLM `max_num_tokens`, vLLM
    /// `max_num_batched_tokens`, SGLang `chunked_prefill_size`).
    pub token_budget: u32,
    /// Running requests per attention-DP rank (`max_batch_size` / `max_num_seqs` /
    /// `max_running_requests`).
    pub max_running: u32,
    /// A prompt longer than the remaining budget is split over iterations.
    pub chunked: bool,
    /// Prefill chunks ride in the same iteration as running decodes; false = prefill-priority
    /// (SGLang: a pending prefill runs as its own iteration and decodes wait).
    pub mixed: bool,
    /// KV for the whole request (prompt + max output) is reserved at admission, so nothing is
    /// ever evicted (TRT-LLM GUARANTEED_NO_EVICT); false = blocks are taken as tokens are
    /// produced and the newest request is preempted (recomputed later) when they run out.
    pub reserve_full: bool,
    /// Tokens per KV block (TRT-LLM 32, vLLM 16, SGLang 1-token pages).
    pub block_tokens: u32,
    /// Steps between the scheduler's polls for new requests (SGLang
    /// `--scheduler-recv-interval`; 1 = every step, every framework's default).
    pub recv_interval: u32,
}

impl Policy {
    /// `offline`: an engine with every request queued (vLLM's offline defaults differ).
    pub fn for_backend(b: Backend, sys: &SystemSpec, offline: bool) -> Self {
        let (budget, max_running) = b.scheduler_defaults(sys, offline);
        let (budget, max_running) = (budget as u32, max_running as u32);
        match b {
            // In-flight batching mixes context and generation, GUARANTEED_NO_EVICT capacity
            // scheduler, 32-token blocks. Chunked context on: serving configs enable it
            // (without it a prompt as long as `max_num_tokens` starves behind decodes).
            Backend::Trtllm => Policy {
                token_budget: budget,
                max_running,
                chunked: true,
                mixed: true,
                reserve_full: true,
                block_tokens: 32,
                recv_interval: 1,
            },
            // V1 engine: chunked prefill always on, decodes first, recompute preemption.
            Backend::Vllm => Policy {
                token_budget: budget,
                max_running,
                chunked: true,
                mixed: true,
                reserve_full: false,
                block_tokens: 16,
                recv_interval: 1,
            },
            // Prefill-first scheduler, chunked prefill, retracts decodes when memory runs out.
            Backend::Sglang => Policy {
                token_budget: budget,
                max_running,
                chunked: true,
                mixed: false,
                reserve_full: false,
                block_tokens: 1,
                recv_interval: 1,
            },
        }
    }
}

/// What an engine does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agg,
    Prefill,
    Decode,
}

/// One request in flight.
#[derive(Debug, Clone, Copy)]
pub struct Req {
    /// When the client sent it (ms).
    pub sent: f64,
    pub isl: u32,
    pub osl: u32,
    /// Prompt tokens already cached (prefix hit).
    pub prefix: u32,
    /// Prompt tokens to compute (isl − prefix, plus generated tokens after a preemption).
    pub to_prefill: u32,
    pub prefilled: u32,
    pub generated: u32,
    /// KV tokens held on the current engine.
    pub kv: u32,
    pub first: f64,
    pub last: f64,
    /// Counted in statistics (not warm-up).
    pub measured: bool,
}

impl Req {
    pub fn decoding(&self) -> bool {
        self.prefilled >= self.to_prefill
    }
}

#[derive(Debug, Default)]
pub struct Rank {
    /// Arrived but not yet taken in by the scheduler (it polls every `recv_interval` steps).
    pub inbox: VecDeque<u32>,
    pub waiting: VecDeque<u32>,
    /// Admitted requests in admission order.
    pub running: Vec<u32>,
    pub kv_used: u64,
    pub kv_cap: u64,
    /// This iteration: (request, new prompt tokens) and decoding requests.
    pub ctx: Vec<(u32, u32)>,
    pub dec: Vec<u32>,
}

impl Rank {
    pub fn load(&self) -> usize {
        self.inbox.len() + self.waiting.len() + self.running.len()
    }
}

/// Step prices of one worker, cached on a log grid of the shape (≈1 % steps), so a
/// simulation prices each distinct shape once.
pub struct StepCost<'a> {
    pub wk: &'a Worker<'a>,
    pub tokens_per_req: f64,
    cache: HashMap<u64, f64>,
}

/// Prompt lengths: 32 grid points per factor of two (±1.1 %).
fn q(x: f64) -> u64 {
    if x < 1.0 {
        0
    } else {
        ((x.log2() * 32.0).round() as u64 + 1).min(0xFFF)
    }
}
fn dq(k: u64) -> f64 {
    if k == 0 {
        0.0
    } else {
        ((k - 1) as f64 / 32.0).exp2()
    }
}

/// Decode KV length: anchors 8 per factor of two, priced exactly and interpolated linearly
/// between (decode attention reads grow linearly with the KV length; the rest of the step does
/// not depend on it).
const KV_PER_OCTAVE: f64 = 8.0;

impl<'a> StepCost<'a> {
    pub fn new(wk: &'a Worker<'a>, tokens_per_req: f64) -> Self {
        StepCost {
            wk,
            tokens_per_req,
            cache: HashMap::new(),
        }
    }

    fn at(&mut self, n_ctx: u64, kc: u64, kp: u64, n_dec: u64, kk: u64, kv: f64) -> f64 {
        let key = n_ctx << 52 | kc << 40 | kp << 28 | n_dec << 12 | kk;
        if let Some(v) = self.cache.get(&key) {
            return *v;
        }
        let s = Step {
            ctx_reqs: n_ctx as f64,
            ctx_tokens: dq(kc),
            ctx_prefix: dq(kp),
            gen_reqs: n_dec as f64,
            gen_kv_len: kv,
            gen_tokens_per_req: self.tokens_per_req,
        };
        let v = if n_ctx + n_dec == 0 {
            0.0
        } else {
            self.wk.step_ms(&s)
        };
        self.cache.insert(key, v);
        v
    }

    /// GPU ms of an iteration with `n_ctx` prefill chunks (mean `ctx_tok` new tokens on top of
    /// mean `prefix` cached ones) and `n_dec` decodes attending to mean `kv` tokens.
    pub fn gpu_ms(&mut self, n_ctx: u32, ctx_tok: f64, prefix: f64, n_dec: u32, kv: f64) -> f64 {
        let (n_ctx, n_dec) = (n_ctx.min(0xFFF) as u64, n_dec.min(0xFFFF) as u64);
        let (kc, kp) = if n_ctx > 0 {
            (q(ctx_tok), q(prefix))
        } else {
            (0, 0)
        };
        if n_dec == 0 {
            return self.at(n_ctx, kc, kp, 0, 0, 0.0);
        }
        let x = kv.max(1.0).log2() * KV_PER_OCTAVE;
        let lo = (x.floor() as u64).min(0xFFE);
        let (k0, k1) = (
            (lo as f64 / KV_PER_OCTAVE).exp2(),
            ((lo + 1) as f64 / KV_PER_OCTAVE).exp2(),
        );
        let a = self.at(n_ctx, kc, kp, n_dec, lo + 1, k0);
        let b = self.at(n_ctx, kc, kp, n_dec, lo + 2, k1);
        let f = ((kv.max(1.0) - k0) / (k1 - k0)).clamp(0.0, 1.0);
        a + (b - a) * f
    }
}

/// Tokens rounded up to whole blocks.
pub fn blocks(tokens: u64, block: u32) -> u64 {
    let b = block.max(1) as u64;
    tokens.div_ceil(b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_round_trips_within_one_percent() {
        for x in [1.0, 3.0, 17.0, 1000.0, 4096.0, 123456.0] {
            let y = dq(q(x));
            assert!((y / x - 1.0).abs() < 0.011, "{x} → {y}");
        }
        assert_eq!(dq(q(0.0)), 0.0);
        assert!(q(2000.0) >= q(1990.0));
    }

    #[test]
    fn blocks_round_up() {
        assert_eq!(blocks(33, 32), 64);
        assert_eq!(blocks(32, 32), 32);
        assert_eq!(blocks(5, 1), 5);
    }
}
