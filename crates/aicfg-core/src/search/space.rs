//! What the search enumerates: parallel layouts per worker role and batch-size ladders
//! (docs/model.md §8).
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use crate::limits::{normalize_list, SearchLimits};
use crate::model::graph::Parallel;
use crate::model::ModelSpec;
use serde::{Deserialize, Serialize};

/// Which worker a parallel space is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agg,
    Prefill,
    Decode,
}

impl Role {
    /// The experiment-file section holding this role's lists.
    pub fn section(self) -> &'static str {
        match self {
            Role::Agg => "worker_config",
            Role::Prefill => "prefill_worker_config",
            Role::Decode => "decode_worker_config",
        }
    }
}

/// Candidate lists of one worker role; every combination is tried and the invalid ones dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParallelSpace {
    /// GPUs per worker that are allowed (tp·pp·dp).
    pub num_gpu_per_worker: Vec<u32>,
    pub tp_list: Vec<u32>,
    pub pp_list: Vec<u32>,
    pub dp_list: Vec<u32>,
    pub moe_tp_list: Vec<u32>,
    pub moe_ep_list: Vec<u32>,
}

const POW2_16: [u32; 5] = [1, 2, 4, 8, 16];

impl ParallelSpace {
    /// The default lists (docs/model.md §8). `wide_ep` adds the large expert-parallel ladder
    /// for fine-grained MoE models (many small experts).
    pub fn defaults(
        model: &ModelSpec,
        system: &SystemSpec,
        backend: Backend,
        role: Role,
        wide_ep: bool,
    ) -> Self {
        if !model.family.is_moe() {
            // Dense: one TP group, within the NVLink domain (16 on NVL72 racks).
            let mut g = vec![1, 2, 4, 8];
            if system.nvlink_domain() >= 16 {
                g.push(16);
            }
            return ParallelSpace {
                num_gpu_per_worker: g.clone(),
                tp_list: g,
                pp_list: vec![1],
                dp_list: vec![1],
                moe_tp_list: vec![1],
                moe_ep_list: vec![1],
            };
        }
        let mut s = ParallelSpace {
            num_gpu_per_worker: POW2_16.to_vec(),
            tp_list: POW2_16.to_vec(),
            pp_list: vec![1],
            dp_list: POW2_16.to_vec(),
            moe_tp_list: POW2_16.to_vec(),
            moe_ep_list: POW2_16.to_vec(),
        };
        if wide_ep && fine_grained_moe(model) {
            let (gpus, dp, ep): (&[u32], &[u32], &[u32]) = match (backend, role) {
                (Backend::Sglang, Role::Prefill) => {
                    (&[8, 16, 32], &[1, 2, 4, 8, 16, 32], &[8, 16, 32])
                }
                (Backend::Sglang, _) => (
                    &[8, 16, 32, 64],
                    &[1, 2, 4, 8, 16, 32, 64],
                    &[8, 16, 32, 64],
                ),
                (_, Role::Prefill) => (&[4, 8, 16, 32], &[4, 8, 16, 32], &[4, 8, 16, 32]),
                _ => (
                    &[2, 4, 8, 16, 32, 64],
                    &[2, 4, 8, 16, 32, 64],
                    &[2, 4, 8, 16, 32, 64],
                ),
            };
            union(&mut s.num_gpu_per_worker, gpus);
            union(&mut s.dp_list, dp);
            union(&mut s.moe_ep_list, ep);
        }
        s
    }

    /// The lists deduplicated and sorted, each within `limits`, and the combinations they span
    /// too; errors name the list as the experiment file does (`worker_config.tp_list`).
    pub fn normalized(&self, role: Role, limits: &SearchLimits) -> Result<ParallelSpace> {
        let section = role.section();
        let n = |key: &str, v: &[u32]| normalize_list(&format!("{section}.{key}"), v, limits);
        let s = ParallelSpace {
            num_gpu_per_worker: n("num_gpu_per_worker", &self.num_gpu_per_worker)?,
            tp_list: n("tp_list", &self.tp_list)?,
            pp_list: n("pp_list", &self.pp_list)?,
            dp_list: n("dp_list", &self.dp_list)?,
            moe_tp_list: n("moe_tp_list", &self.moe_tp_list)?,
            moe_ep_list: n("moe_ep_list", &self.moe_ep_list)?,
        };
        let combos = [
            &s.tp_list,
            &s.pp_list,
            &s.dp_list,
            &s.moe_tp_list,
            &s.moe_ep_list,
        ]
        .iter()
        .fold(1u64, |acc, l| acc.saturating_mul(l.len() as u64));
        if combos > limits.combinations {
            return Err(AicfgError::Limit {
                what: format!("{section} parallel lists"),
                detail: format!(
                    "tp × pp × dp × moe_tp × moe_ep lists span {combos} combinations, more than the \
                     {} allowed; shorten the lists (or raise --max-combinations)",
                    limits.combinations
                ),
            });
        }
        Ok(s)
    }

    /// Every valid layout with at most `max_gpus` GPUs (docs/model.md §4.2, §8), in a stable order.
    /// Call on [`ParallelSpace::normalized`] lists: the work is the product of their lengths.
    pub fn enumerate(&self, model: &ModelSpec, backend: Backend, max_gpus: u32) -> Vec<Parallel> {
        let moe = model.family.is_moe();
        let mut out = Vec::new();
        for &tp in &self.tp_list {
            if tp == 0 || !model.num_heads.is_multiple_of(tp as u64) {
                continue;
            }
            for &pp in &self.pp_list {
                if pp == 0 || pp > model.num_layers {
                    continue;
                }
                let dps: &[u32] = if moe { &self.dp_list } else { &[1] };
                for &dp in dps {
                    let gpus64 = u64::from(tp) * u64::from(pp) * u64::from(dp);
                    if dp == 0 || gpus64 > u64::from(max_gpus) {
                        continue;
                    }
                    let gpus = gpus64 as u32;
                    if !self.num_gpu_per_worker.contains(&gpus) {
                        continue;
                    }
                    if !moe {
                        out.push(Parallel {
                            tp,
                            pp,
                            dp: 1,
                            moe_tp: 1,
                            moe_ep: 1,
                        });
                        continue;
                    }
                    let experts = model.moe.as_ref().map_or(1, |m| m.num_experts);
                    for &etp in &self.moe_tp_list {
                        for &ep in &self.moe_ep_list {
                            if etp == 0
                                || ep == 0
                                || u64::from(etp) * u64::from(ep) != u64::from(tp) * u64::from(dp)
                            {
                                continue;
                            }
                            if !experts.is_multiple_of(ep) {
                                continue;
                            }
                            let ok = match backend {
                                // TRT-LLM runs attention either TP or DP, not both.
                                Backend::Trtllm => !(dp > 1 && tp > 1),
                                // vLLM shards experts by TP or by EP, not both.
                                Backend::Vllm => !(etp > 1 && ep > 1),
                                Backend::Sglang => true,
                            };
                            if ok {
                                out.push(Parallel {
                                    tp,
                                    pp,
                                    dp,
                                    moe_tp: etp,
                                    moe_ep: ep,
                                });
                            }
                        }
                    }
                }
            }
        }
        out.sort_by_key(|p| (p.gpus(), p.tp, p.pp, p.dp, p.moe_tp, p.moe_ep));
        out.dedup();
        out
    }
}

fn union(v: &mut Vec<u32>, extra: &[u32]) {
    v.extend_from_slice(extra);
    v.sort_unstable();
    v.dedup();
}

/// DeepSeek-style MoE (many small experts) is where wide expert parallelism pays.
pub fn fine_grained_moe(model: &ModelSpec) -> bool {
    model.moe.as_ref().is_some_and(|m| m.num_experts >= 64)
}

/// Agg concurrency ladder per attention-DP rank (docs/model.md §8), up to `max`.
pub fn agg_batches(max: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (1..16).collect();
    v.extend((16..=28).step_by(4));
    v.extend((32..=56).step_by(8));
    v.extend((64..=240).step_by(16));
    v.extend((256..=480).step_by(32));
    v.extend([512, 768, 1024]);
    v.retain(|&b| b <= max.max(1));
    v
}

/// Decode batch ladder per attention-DP rank (docs/model.md §8), up to `max`.
pub fn decode_batches(max: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (1..16).collect();
    v.extend((16..=30).step_by(2));
    v.extend((32..=124).step_by(4));
    v.extend((128..=504).step_by(8));
    v.extend([512, 768, 1024]);
    v.retain(|&b| b <= max.max(1));
    v
}

/// Limits on one xPyD replica (docs/model.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaConfig {
    /// Allowed GPU counts of one replica; empty = any count up to the cap.
    pub num_gpu_per_replica: Vec<u32>,
    /// 0 = no cap beyond the total GPUs.
    pub max_gpu_per_replica: u32,
    pub max_prefill_worker: u32,
    pub max_decode_worker: u32,
}

impl ReplicaConfig {
    pub fn defaults(wide_ep: bool) -> Self {
        let mut sizes = vec![1, 2, 4, 8];
        sizes.extend((16..=128).step_by(8));
        ReplicaConfig {
            num_gpu_per_replica: if wide_ep { Vec::new() } else { sizes },
            max_gpu_per_replica: if wide_ep { 512 } else { 128 },
            max_prefill_worker: 32,
            max_decode_worker: 32,
        }
    }

    /// Largest replica allowed with `total` GPUs available.
    pub fn cap(&self, total: u32) -> u32 {
        if self.max_gpu_per_replica == 0 {
            total
        } else {
            self.max_gpu_per_replica.min(total)
        }
    }

    pub fn allows(&self, gpus: u32, total: u32) -> bool {
        gpus >= 1
            && gpus <= self.cap(total)
            && (self.num_gpu_per_replica.is_empty() || self.num_gpu_per_replica.contains(&gpus))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;
    use crate::model::ModelRegistry;

    #[test]
    fn dense_layouts_are_tp_only() {
        let m = ModelRegistry::builtin().resolve("QWEN3_32B").unwrap();
        let sys = SystemRegistry::builtin().get("h200_sxm").unwrap().clone();
        let s = ParallelSpace::defaults(&m, &sys, Backend::Trtllm, Role::Agg, false);
        let tps: Vec<u32> = s
            .enumerate(&m, Backend::Trtllm, 32)
            .iter()
            .map(|p| p.tp)
            .collect();
        assert_eq!(tps, vec![1, 2, 4, 8]);
        // The total GPU count clamps the worker size.
        assert_eq!(s.enumerate(&m, Backend::Trtllm, 2).len(), 2);
    }

    #[test]
    fn moe_layouts_follow_backend_rules() {
        let m = ModelRegistry::builtin().resolve("QWEN3_30B_A3B").unwrap();
        let sys = SystemRegistry::builtin().get("h200_sxm").unwrap().clone();
        for b in Backend::ALL {
            let s = ParallelSpace::defaults(&m, &sys, b, Role::Agg, false);
            let all = s.enumerate(&m, b, 16);
            assert!(!all.is_empty());
            for p in all {
                assert_eq!(p.tp * p.dp, p.moe_tp * p.moe_ep, "{p:?}");
                assert!(p.gpus() <= 16);
                match b {
                    Backend::Trtllm => assert!(!(p.tp > 1 && p.dp > 1)),
                    Backend::Vllm => assert!(!(p.moe_tp > 1 && p.moe_ep > 1)),
                    Backend::Sglang => {}
                }
            }
        }
    }

    #[test]
    fn ladders() {
        let a = agg_batches(512);
        assert_eq!(&a[..3], &[1, 2, 3]);
        assert_eq!(*a.last().unwrap(), 512);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            decode_batches(20),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20]
        );
        let r = ReplicaConfig::defaults(false);
        assert!(r.allows(24, 32) && !r.allows(23, 32) && !r.allows(40, 32));
    }
}
