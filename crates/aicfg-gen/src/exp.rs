//! `config.yaml`: the fully resolved experiment of one serving mode, in the experiment-file
//! layout (`exps:` plus one named experiment), so `cli exp` can run it again.
use crate::error::Result;
use aicfg_core::search::{ParallelSpace, Role, SearchRequest, SearchResult};
use aicfg_core::ServeMode;
use serde_norway::{Mapping, Value};

fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

fn list(xs: &[u32]) -> Value {
    Value::Sequence(xs.iter().map(|x| v(*x as u64)).collect())
}

fn worker(req: &SearchRequest, result: &SearchResult, role: Role) -> Value {
    let backend = req.backends[0];
    let sys = match (role, &req.decode_system) {
        (Role::Decode, Some(d)) => d,
        _ => &req.system,
    };
    let given = match role {
        Role::Agg => &req.agg_space,
        Role::Prefill => &req.prefill_space,
        Role::Decode => &req.decode_space,
    };
    let space = given.clone().unwrap_or_else(|| {
        ParallelSpace::defaults(&req.model, sys, backend, role, req.enable_wide_ep)
    });
    let mut m = Mapping::new();
    // The quant modes the search resolved (checkpoint defaults filled in).
    if let Some(q) = result
        .quant
        .iter()
        .find(|q| q.role == role && q.backend == backend)
    {
        m.insert(v("gemm_quant_mode"), v(q.quant.gemm.name()));
        m.insert(v("moe_quant_mode"), v(q.quant.moe.name()));
        m.insert(v("kvcache_quant_mode"), v(q.quant.kvcache.name()));
        m.insert(v("fmha_quant_mode"), v(q.quant.fmha.name()));
        m.insert(v("comm_quant_mode"), v(q.quant.comm.name()));
    }
    m.insert(v("num_gpu_per_worker"), list(&space.num_gpu_per_worker));
    m.insert(v("tp_list"), list(&space.tp_list));
    m.insert(v("pp_list"), list(&space.pp_list));
    m.insert(v("dp_list"), list(&space.dp_list));
    m.insert(v("moe_tp_list"), list(&space.moe_tp_list));
    m.insert(v("moe_ep_list"), list(&space.moe_ep_list));
    Value::Mapping(m)
}

/// The experiment file of one mode. One function so the experiment module's own serializer
/// can replace it.
pub fn experiment_yaml(
    req: &SearchRequest,
    result: &SearchResult,
    mode: ServeMode,
) -> Result<String> {
    let name = match mode {
        ServeMode::Disagg => "exp_disagg",
        _ => "exp_agg",
    };
    let w = &req.workload;
    let mut e = Mapping::new();
    e.insert(v("mode"), v("patch"));
    e.insert(v("serving_mode"), v(crate::mode_dir(mode)));
    e.insert(v("model_name"), v(req.model.name.as_str()));
    if let Some(g) = req.total_gpus {
        e.insert(v("total_gpus"), v(g as u64));
    }
    e.insert(v("system_name"), v(req.system.name.as_str()));
    if mode == ServeMode::Disagg {
        let d = req.decode_system.as_ref().unwrap_or(&req.system);
        e.insert(v("decode_system_name"), v(d.name.as_str()));
    }
    let backends: Vec<&str> = req.backends.iter().map(|b| b.name()).collect();
    if backends.len() == 1 {
        e.insert(v("backend_name"), v(backends[0]));
        e.insert(
            v("backend_version"),
            v(crate::genconfig::modelled_version(req.backends[0])),
        );
    } else {
        e.insert(
            v("backend_name"),
            Value::Sequence(backends.iter().map(|b| v(*b)).collect()),
        );
    }
    e.insert(v("database_mode"), v(result.database_mode));
    e.insert(v("isl"), v(w.isl as u64));
    e.insert(v("osl"), v(w.osl as u64));
    e.insert(v("prefix"), v(w.prefix as u64));
    e.insert(v("ttft"), v(req.ttft_ms));
    e.insert(v("tpot"), v(req.tpot_ms));
    e.insert(v("enable_wide_ep"), v(req.enable_wide_ep));
    let mut c = Mapping::new();
    c.insert(v("nextn"), v(w.nextn as u64));
    match mode {
        ServeMode::Disagg => {
            c.insert(
                v("prefill_worker_config"),
                worker(req, result, Role::Prefill),
            );
            c.insert(v("decode_worker_config"), worker(req, result, Role::Decode));
            let r = &req.replica;
            let mut rc = Mapping::new();
            rc.insert(v("num_gpu_per_replica"), list(&r.num_gpu_per_replica));
            rc.insert(v("max_gpu_per_replica"), v(r.max_gpu_per_replica as u64));
            rc.insert(v("max_prefill_worker"), v(r.max_prefill_worker as u64));
            rc.insert(v("max_decode_worker"), v(r.max_decode_worker as u64));
            c.insert(v("replica_config"), Value::Mapping(rc));
        }
        _ => {
            c.insert(v("worker_config"), worker(req, result, Role::Agg));
        }
    }
    let t = &req.tuning;
    let mut at = Mapping::new();
    at.insert(
        v("prefill_latency_correction_scale"),
        v(t.prefill_latency_scale),
    );
    at.insert(
        v("decode_latency_correction_scale"),
        v(t.decode_latency_scale),
    );
    at.insert(v("agg_max_batch_size"), v(t.agg_max_batch_size as u64));
    at.insert(
        v("prefill_max_batch_size"),
        v(t.prefill_max_batch_size as u64),
    );
    at.insert(
        v("decode_max_batch_size"),
        v(t.decode_max_batch_size as u64),
    );
    if let Some(f) = req.free_gpu_memory_fraction {
        at.insert(v("free_gpu_memory_fraction"), v(f));
    }
    c.insert(v("advanced_tuning_config"), Value::Mapping(at));
    e.insert(v("config"), Value::Mapping(c));
    let mut root = Mapping::new();
    root.insert(v("exps"), Value::Sequence(vec![v(name)]));
    root.insert(v(name), Value::Mapping(e));
    Ok(format!(
        "# Fully resolved {} experiment of this search; rerun with `aicfg cli exp --yaml_path config.yaml`.\n{}",
        crate::mode_dir(mode),
        serde_norway::to_string(&Value::Mapping(root))?
    ))
}
