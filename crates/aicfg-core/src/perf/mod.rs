//! Op timing. `PerfSource` is the only door to timing data: `sol` (roofline), `empirical`
//! (roofline with calibrated efficiencies, the embedded default), `silicon` / `hybrid` (measured
//! op tables, see `crate::perfdb`). Every op time says which source produced it.
mod empirical;
mod lookup;
pub mod opcheck;
pub mod opfit;
pub mod routing;
mod silicon;
pub mod source;
pub mod step;

pub use empirical::{
    generation, BackendCalib, EmpiricalParams, EmpiricalSource, GenCalib, OpCalib, OpCalibSource,
    SiliconCalib,
};
pub use lookup::Lookup;
pub use silicon::SiliconSource;
pub use step::{OpTime, Step, StepBreakdown};

use crate::hardware::SystemSpec;
use crate::model::graph::{CommOp, OpKind};
use crate::quant::ComputeDtype;
use serde::Serialize;

/// What an op asks of the hardware for one invocation in one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum WorkClass {
    Gemm,
    ContextAttention,
    GenerationAttention,
    LinearAttention,
    Moe,
    Comm(CommOp),
    P2p,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Work {
    pub class: WorkClass,
    pub flops: f64,
    pub bytes: f64,
    pub dtype: ComputeDtype,
    /// GEMM rows (tokens), or tokens per active expert for MoE.
    pub m: f64,
    /// GPUs taking part (collectives).
    pub gpus: u32,
    /// Weight-only quantization: weights are dequantized before the MMA.
    pub dequant: bool,
    /// A collective NCCL runs whatever its size (the NCCL op tables), not a framework's own
    /// all-reduce kernel.
    pub nccl: bool,
    /// Shape details the measured tables key on (docs/model.md §5.3).
    pub shape: Shape,
}

/// Table coordinates of one op invocation that `flops`/`bytes` do not carry.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Shape {
    /// Attention: requests in the batch.
    pub batch: f64,
    /// Context attention: new tokens per request; decode: KV length attended to.
    pub seq: f64,
    /// Context attention: cached tokens per request before the new ones.
    pub prefix: f64,
    /// MoE: tokens entering the expert pool (all attention-DP ranks); decode attention: tokens
    /// per request.
    pub tokens: f64,
    /// Table dtype label of the op (MoE quant, FMHA quant); empty when the op kind implies it.
    pub quant: &'static str,
    /// KV-cache dtype label (attention).
    pub kv_quant: &'static str,
}

impl Work {
    pub fn new(class: WorkClass, flops: f64, bytes: f64, dtype: ComputeDtype) -> Self {
        Work {
            class,
            flops,
            bytes,
            dtype,
            m: 0.0,
            gpus: 1,
            dequant: false,
            nccl: false,
            shape: Shape::default(),
        }
    }
}

/// Where op times come from (docs/model.md §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DatabaseMode {
    Sol,
    Empirical,
    /// Measured tables only; an op they cannot answer is an error.
    Silicon,
    /// Measured tables where they cover the op, empirical elsewhere.
    Hybrid,
    /// Hybrid when a database for the system/backend is installed, else empirical.
    Auto,
}

impl DatabaseMode {
    pub fn parse(s: &str) -> crate::error::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sol" => Ok(DatabaseMode::Sol),
            "empirical" => Ok(DatabaseMode::Empirical),
            "silicon" => Ok(DatabaseMode::Silicon),
            "hybrid" => Ok(DatabaseMode::Hybrid),
            "auto" | "default" => Ok(DatabaseMode::Auto),
            _ => Err(crate::error::AicfgError::Unknown {
                what: "database mode",
                given: s.to_string(),
                known: "silicon, hybrid, empirical, sol, auto".into(),
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DatabaseMode::Sol => "sol",
            DatabaseMode::Empirical => "empirical",
            DatabaseMode::Silicon => "silicon",
            DatabaseMode::Hybrid => "hybrid",
            DatabaseMode::Auto => "auto",
        }
    }
    /// Whether this mode reads the measured op database.
    pub fn uses_database(self) -> bool {
        matches!(
            self,
            DatabaseMode::Silicon | DatabaseMode::Hybrid | DatabaseMode::Auto
        )
    }
}

pub trait PerfSource: Send + Sync {
    /// Short tag reported per op (`sol`, `empirical`, ...).
    fn name(&self) -> &'static str;
    /// Milliseconds for one invocation of `op` doing `work`.
    fn time_ms(&self, sys: &SystemSpec, op: &OpKind, work: &Work) -> f64;
    /// As `time_ms`, with the tag of what answered (hybrid sources answer per op).
    fn time_tagged(&self, sys: &SystemSpec, op: &OpKind, work: &Work) -> (f64, &'static str) {
        (self.time_ms(sys, op, work), self.name())
    }
}

/// Roofline: max(compute, memory) with datasheet peaks, no overheads.
#[derive(Debug, Clone, Copy, Default)]
pub struct SolSource;

/// Roofline time (ms) shared by every source.
pub fn sol_ms(sys: &SystemSpec, w: &Work) -> f64 {
    match w.class {
        WorkClass::Comm(op) => comm_bytes_on_wire(op, w.gpus, w.bytes) / sys.group_bw(w.gpus) * 1e3,
        WorkClass::P2p => w.bytes / sys.node.inter_node_bw.min(sys.node.intra_node_bw) * 1e3,
        _ => {
            let f = sys.flops(w.dtype).unwrap_or(sys.gpu.bfloat16_tc_flops);
            (w.flops / f).max(w.bytes / sys.gpu.mem_bw) * 1e3
        }
    }
}

/// Bytes each GPU sends for a collective over `n` GPUs whose full payload is `bytes`.
pub fn comm_bytes_on_wire(op: CommOp, n: u32, bytes: f64) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let frac = (n - 1) as f64 / n as f64;
    match op {
        CommOp::AllReduce => 2.0 * frac * bytes,
        CommOp::AllGather | CommOp::ReduceScatter | CommOp::AllToAll => frac * bytes,
    }
}

impl PerfSource for SolSource {
    fn name(&self) -> &'static str {
        "sol"
    }
    fn time_ms(&self, sys: &SystemSpec, _op: &OpKind, w: &Work) -> f64 {
        sol_ms(sys, w)
    }
}
