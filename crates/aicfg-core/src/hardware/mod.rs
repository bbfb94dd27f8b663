//! GPU and node descriptions (docs/model.md §2). Built-in systems are embedded YAML files under
//! `data/systems/`; users add their own directory of the same format.
use crate::error::{AicfgError, Result};
use crate::quant::ComputeDtype;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// GPU maker: decides which serving frameworks run (TensorRT-LLM needs CUDA).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    #[default]
    Nvidia,
    Amd,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct GpuSpec {
    /// `nvidia` (default) or `amd`.
    #[serde(default)]
    pub vendor: Vendor,
    /// HBM bandwidth, bytes/s.
    pub mem_bw: f64,
    /// Device memory, bytes.
    pub mem_capacity: f64,
    pub bfloat16_tc_flops: f64,
    #[serde(default)]
    pub int8_tc_flops: Option<f64>,
    #[serde(default)]
    pub fp8_tc_flops: Option<f64>,
    #[serde(default)]
    pub fp4_tc_flops: Option<f64>,
    #[serde(default)]
    pub power: f64,
    #[serde(default)]
    pub sm_version: u32,
    /// Streaming multiprocessors (compute units on AMD); 0 = not given.
    #[serde(default)]
    pub sm_count: u32,
    #[serde(default = "default_bw_scale")]
    pub mem_bw_empirical_scaling_factor: f64,
    #[serde(default = "default_mem_latency")]
    pub mem_empirical_constant_latency: f64,
}

fn default_bw_scale() -> f64 {
    0.8
}
fn default_mem_latency() -> f64 {
    3e-6
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeSpec {
    pub num_gpus_per_node: u32,
    #[serde(default)]
    pub num_gpus_per_rack: Option<u32>,
    /// NVLink bandwidth per GPU, one direction, bytes/s.
    pub intra_node_bw: f64,
    /// Scale-out bandwidth per GPU, one direction, bytes/s.
    pub inter_node_bw: f64,
    #[serde(default)]
    pub inter_rack_bw: Option<f64>,
    #[serde(default)]
    pub pcie_bw: f64,
    #[serde(default = "default_p2p")]
    pub p2p_latency: f64,
    #[serde(default)]
    pub inter_rack_latency: Option<f64>,
    /// Measured in-node all-reduce per GPU-group size where the GPUs share a PCIe tree rather
    /// than a switched NVLink fabric: a ring's bandwidth and latency then depend on which
    /// switches and sockets the group spans. Empty = the NVLink model.
    #[serde(default)]
    pub allreduce_tiers: BTreeMap<u32, AllreduceTier>,
}

/// One group size's all-reduce: fixed latency plus the ring's bytes at the bus bandwidth.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct AllreduceTier {
    /// Latency of a small all-reduce (µs).
    pub latency_us: f64,
    /// NCCL bus bandwidth of large messages, per GPU (bytes/s): the ring's `2(n−1)/n · bytes`
    /// over it gives the transfer time.
    pub bus_bw: f64,
}

fn default_p2p() -> f64 {
    1e-5
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MiscSpec {
    #[serde(default)]
    pub nccl_mem: BTreeMap<u32, f64>,
    #[serde(default)]
    pub other_mem: f64,
    #[serde(default)]
    pub nccl_version: Option<String>,
    /// `nvidia.com/gpu.product` node label of the GPU (GPU feature discovery); `None` = unknown,
    /// the generator then writes no node selector.
    #[serde(default)]
    pub k8s_gpu_product: Option<String>,
    /// Price of one GPU-hour (US dollars) for cost figures; `None` = unknown (no cost shown).
    #[serde(default)]
    pub gpu_cost_per_hour: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SystemSpec {
    #[serde(default)]
    pub name: String,
    pub gpu: GpuSpec,
    pub node: NodeSpec,
    pub misc: MiscSpec,
}

impl SystemSpec {
    /// SMs (compute units) the kernels spread their thread blocks over; an H100's 132 when the
    /// description does not say.
    pub fn sms(&self) -> f64 {
        if self.gpu.sm_count > 0 {
            f64::from(self.gpu.sm_count)
        } else {
            132.0
        }
    }

    /// Dense tensor-core FLOP/s for a compute dtype, or None when the GPU lacks it.
    pub fn flops(&self, dtype: ComputeDtype) -> Option<f64> {
        let v = match dtype {
            ComputeDtype::Bf16 => Some(self.gpu.bfloat16_tc_flops),
            ComputeDtype::Int8 => self.gpu.int8_tc_flops,
            ComputeDtype::Fp8 => self.gpu.fp8_tc_flops,
            ComputeDtype::Fp4 => self.gpu.fp4_tc_flops,
        };
        v.filter(|f| f.is_finite() && *f > 0.0)
    }

    pub fn available_dtypes(&self) -> Vec<&'static str> {
        [
            ComputeDtype::Bf16,
            ComputeDtype::Int8,
            ComputeDtype::Fp8,
            ComputeDtype::Fp4,
        ]
        .into_iter()
        .filter(|d| self.flops(*d).is_some())
        .map(|d| d.name())
        .collect()
    }

    /// GPUs that share one NVLink domain (a node, or an NVL72 rack).
    pub fn nvlink_domain(&self) -> u32 {
        self.node
            .num_gpus_per_rack
            .unwrap_or(self.node.num_gpus_per_node)
            .max(self.node.num_gpus_per_node)
    }

    /// Per-GPU one-direction bandwidth of a group of `n` GPUs (bytes/s): NVLink inside the
    /// domain, scale-out beyond it.
    pub fn group_bw(&self, n: u32) -> f64 {
        if n <= self.node.num_gpus_per_node {
            self.node.intra_node_bw
        } else if n <= self.nvlink_domain() {
            self.node.inter_node_bw
        } else {
            self.node.inter_rack_bw.unwrap_or(self.node.inter_node_bw)
        }
    }

    /// The measured all-reduce tier for a group of `n` GPUs inside one node: the smallest
    /// measured group that holds `n` (a ring over more GPUs crosses at least the same links),
    /// else the largest measured. None without tiers or beyond the node.
    pub fn allreduce_tier(&self, n: u32) -> Option<AllreduceTier> {
        if n <= 1 || n > self.node.num_gpus_per_node {
            return None;
        }
        let t = &self.node.allreduce_tiers;
        t.range(n..)
            .next()
            .or_else(|| t.iter().next_back())
            .map(|(_, v)| *v)
    }

    /// True when a group of `n` GPUs stays on NVLink.
    pub fn on_nvlink(&self, n: u32) -> bool {
        n <= self.nvlink_domain()
            && (n <= self.node.num_gpus_per_node || self.node.num_gpus_per_rack.is_some())
    }

    /// NCCL buffer reserve per GPU for a TP group (keyed by min(tp, 8)).
    pub fn nccl_mem(&self, tp: u32) -> f64 {
        let key = tp.clamp(1, 8);
        self.misc
            .nccl_mem
            .range(..=key)
            .next_back()
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    }

    pub fn capacity_gib(&self) -> f64 {
        self.gpu.mem_capacity / GIB
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |reason: String| AicfgError::SystemFile {
            path: origin.to_string(),
            reason,
        };
        for (k, v) in [
            ("gpu.mem_bw", self.gpu.mem_bw),
            ("gpu.mem_capacity", self.gpu.mem_capacity),
            ("gpu.bfloat16_tc_flops", self.gpu.bfloat16_tc_flops),
            ("node.intra_node_bw", self.node.intra_node_bw),
            ("node.inter_node_bw", self.node.inter_node_bw),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(format!("{k} must be a positive number, got {v}")));
            }
        }
        if self.node.num_gpus_per_node == 0 {
            return Err(bad("node.num_gpus_per_node must be at least 1".into()));
        }
        let g = &self.gpu;
        let n = &self.node;
        // Optional or defaulted numbers: finite and not negative (0 = absent where optional).
        let mut rest: Vec<(String, f64)> = vec![
            ("gpu.power".into(), g.power),
            ("node.pcie_bw".into(), n.pcie_bw),
            ("node.p2p_latency".into(), n.p2p_latency),
            (
                "gpu.mem_empirical_constant_latency".into(),
                g.mem_empirical_constant_latency,
            ),
            ("misc.other_mem".into(), self.misc.other_mem),
        ];
        for (k, v) in [
            ("gpu.int8_tc_flops", g.int8_tc_flops),
            ("gpu.fp8_tc_flops", g.fp8_tc_flops),
            ("gpu.fp4_tc_flops", g.fp4_tc_flops),
            ("node.inter_rack_bw", n.inter_rack_bw),
            ("node.inter_rack_latency", n.inter_rack_latency),
            ("misc.gpu_cost_per_hour", self.misc.gpu_cost_per_hour),
        ] {
            rest.extend(v.map(|v| (k.to_string(), v)));
        }
        rest.extend(
            self.misc
                .nccl_mem
                .iter()
                .map(|(k, v)| (format!("misc.nccl_mem.{k}"), *v)),
        );
        for (k, t) in &n.allreduce_tiers {
            if !(t.bus_bw.is_finite() && t.bus_bw > 0.0) || *k < 2 {
                return Err(bad(format!(
                    "node.allreduce_tiers.{k}: a group of at least 2 GPUs with a positive bus_bw, got {} bytes/s",
                    t.bus_bw
                )));
            }
            rest.push((format!("node.allreduce_tiers.{k}.latency_us"), t.latency_us));
        }
        for (k, v) in rest {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(format!("{k} must be a non-negative number, got {v}")));
            }
        }
        let f = g.mem_bw_empirical_scaling_factor;
        if !(f > 0.0 && f <= 1.0) {
            return Err(bad(format!(
                "gpu.mem_bw_empirical_scaling_factor is a fraction of peak bandwidth and must be in (0, 1], got {f}"
            )));
        }
        if self.misc.other_mem >= g.mem_capacity {
            return Err(bad(format!(
                "misc.other_mem ({}) must be less than gpu.mem_capacity ({})",
                self.misc.other_mem, g.mem_capacity
            )));
        }
        if n.num_gpus_per_node > crate::limits::MAX_PARALLEL {
            return Err(bad(format!(
                "node.num_gpus_per_node {} is larger than {}",
                n.num_gpus_per_node,
                crate::limits::MAX_PARALLEL
            )));
        }
        if let Some(r) = n.num_gpus_per_rack {
            if r == 0 || r > crate::limits::MAX_TOTAL_GPUS {
                return Err(bad(format!(
                    "node.num_gpus_per_rack must be in 1..={}, got {r}",
                    crate::limits::MAX_TOTAL_GPUS
                )));
            }
        }
        if let Some(l) = &self.misc.k8s_gpu_product {
            if !valid_label_value(l) {
                return Err(bad(format!(
                    "misc.k8s_gpu_product '{l}' is not a Kubernetes label value (1-63 letters, digits, '-', '_', '.', starting and ending alphanumeric)"
                )));
            }
        }
        Ok(())
    }

    /// Parse a system YAML; `name` is used when the file has no `name:` key.
    pub fn from_yaml(text: &str, name: &str, origin: &str) -> Result<Self> {
        crate::limits::check_yaml_depth(text, crate::limits::MAX_YAML_DEPTH).map_err(|reason| {
            AicfgError::SystemFile {
                path: origin.to_string(),
                reason,
            }
        })?;
        let mut s: SystemSpec =
            serde_norway::from_str(text).map_err(|e| AicfgError::SystemFile {
                path: origin.to_string(),
                reason: e.to_string(),
            })?;
        if s.name.is_empty() {
            s.name = name.to_string();
        }
        s.validate(origin)?;
        Ok(s)
    }
}

/// A Kubernetes label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub fn valid_label_value(v: &str) -> bool {
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && ends(v.chars().next())
        && ends(v.chars().last())
}

pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// System YAMLs read from one `--systems-path` directory.
const MAX_SYSTEM_FILES: usize = 4096;

macro_rules! builtin_systems {
    ($($n:literal),*) => {
        &[$(($n, include_str!(concat!("../../../../data/systems/", $n, ".yaml")))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin_systems!(
    "a100_pcie",
    "a100_sxm",
    "a30",
    "b200_sxm",
    "b300_sxm",
    "gb200",
    "gb300",
    "h100_pcie",
    "h100_sxm",
    "h200_sxm",
    "gh200",
    "h20",
    "h800_sxm",
    "l4",
    "l40s",
    "mi300x",
    "mi325x",
    "mi355x",
    "rtx_pro_6000_server"
);

/// Other spellings of built-in systems: the original tool's names for the NVL72 trays.
pub const SYSTEM_ALIASES: &[(&str, &str)] = &[("gb200_sxm", "gb200"), ("gb300_sxm", "gb300")];

/// Built-in systems plus any user directories, looked up by name.
#[derive(Debug, Clone)]
pub struct SystemRegistry {
    systems: BTreeMap<String, SystemSpec>,
}

impl SystemRegistry {
    pub fn builtin() -> Self {
        let systems = BUILTIN
            .iter()
            .map(|(n, t)| {
                let s = SystemSpec::from_yaml(t, n, &format!("data/systems/{n}.yaml"))
                    .expect("embedded system files are valid (checked by tests)");
                (n.to_string(), s)
            })
            .collect();
        SystemRegistry { systems }
    }

    /// Add every `*.yaml` in `dir`; a user file replaces a built-in of the same name.
    pub fn add_dir(&mut self, dir: &Path) -> Result<usize> {
        let entries = std::fs::read_dir(dir).map_err(|e| AicfgError::SystemFile {
            path: dir.display().to_string(),
            reason: format!("cannot read directory: {e}"),
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        paths.sort();
        if paths.len() > MAX_SYSTEM_FILES {
            return Err(AicfgError::SystemFile {
                path: dir.display().to_string(),
                reason: format!(
                    "holds {} system files, more than the {MAX_SYSTEM_FILES} read",
                    paths.len()
                ),
            });
        }
        for p in &paths {
            let text = crate::limits::read_text(p, crate::limits::MAX_TEXT_FILE_BYTES)?;
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("system");
            let mut s = SystemSpec::from_yaml(&text, stem, &p.display().to_string())?;
            s.name = s.name.to_ascii_lowercase();
            self.systems.insert(s.name.clone(), s);
        }
        Ok(paths.len())
    }

    /// A system by name or by one of the [`SYSTEM_ALIASES`] (a real name wins over an alias).
    pub fn get(&self, name: &str) -> Result<&SystemSpec> {
        let key = name.trim().to_ascii_lowercase();
        let alias = SYSTEM_ALIASES
            .iter()
            .find(|(a, _)| *a == key)
            .map(|(_, to)| *to);
        self.systems
            .get(&key)
            .or_else(|| alias.and_then(|to| self.systems.get(to)))
            .ok_or_else(|| {
                let names = self.names();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                crate::suggest::unknown("system", name, &refs, names.join(", "))
            })
    }

    pub fn names(&self) -> Vec<String> {
        self.systems.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_systems_load_with_datasheet_values() {
        let r = SystemRegistry::builtin();
        for n in [
            "h100_sxm", "h200_sxm", "b200_sxm", "gb200", "a100_sxm", "b300_sxm", "gb300",
        ] {
            assert!(r.get(n).is_ok(), "{n}");
        }
        let h200 = r.get("h200_sxm").unwrap();
        assert_eq!(h200.gpu.mem_bw, 4.8e12);
        assert_eq!(h200.flops(ComputeDtype::Fp8), Some(1978e12));
        assert_eq!(h200.flops(ComputeDtype::Fp4), None);
        assert_eq!(h200.nccl_mem(2), 358612992.0);
        assert_eq!(h200.nccl_mem(16), 411041792.0);
        assert_eq!(r.get("a100_sxm").unwrap().flops(ComputeDtype::Fp8), None);
    }

    #[test]
    fn every_builtin_system_names_its_k8s_gpu_label() {
        let r = SystemRegistry::builtin();
        for n in r.names() {
            let l = r.get(&n).unwrap().misc.k8s_gpu_product.clone();
            assert!(l.as_deref().is_some_and(valid_label_value), "{n}: {l:?}");
        }
        let h200 = r.get("h200_sxm").unwrap();
        assert_eq!(h200.misc.k8s_gpu_product.as_deref(), Some("NVIDIA-H200"));
        let text = include_str!("../../../../data/systems/h200_sxm.yaml");
        let no_label = text.replace("k8s_gpu_product: NVIDIA-H200", "");
        let s = SystemSpec::from_yaml(&no_label, "x", "x.yaml").unwrap();
        assert_eq!(s.misc.k8s_gpu_product, None);
        let bad = text.replace("NVIDIA-H200", "NVIDIA H200; rm -rf /");
        let e = SystemSpec::from_yaml(&bad, "x", "x.yaml").unwrap_err();
        assert!(e.to_string().contains("misc.k8s_gpu_product"), "{e}");
    }

    #[test]
    fn bandwidth_tiers() {
        let r = SystemRegistry::builtin();
        let h100 = r.get("h100_sxm").unwrap();
        assert_eq!(h100.group_bw(8), 450e9);
        assert_eq!(h100.group_bw(16), 50e9);
        let gb200 = r.get("gb200").unwrap();
        assert_eq!(gb200.nvlink_domain(), 72);
        assert_eq!(gb200.group_bw(16), 900e9);
        assert!(gb200.on_nvlink(16));
        assert!(!h100.on_nvlink(16));
    }

    #[test]
    fn unknown_system_lists_known() {
        let e = SystemRegistry::builtin()
            .get("tpu_v5e")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("unknown system 'tpu_v5e'; known: "), "{e}");
        assert!(e.contains("h200_sxm"));
    }

    #[test]
    fn aliases_and_typos() {
        let r = SystemRegistry::builtin();
        assert_eq!(r.get("GB200_SXM").unwrap().name, "gb200");
        assert_eq!(r.get("gb300_sxm").unwrap().name, "gb300");
        let e = r.get("h200_sx").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown system 'h200_sx'; did you mean 'h200_sxm'? known: a100_pcie"),
            "{e}"
        );
    }

    #[test]
    fn allreduce_tiers_are_checked() {
        let text = include_str!("../../../../data/systems/l40s.yaml");
        assert!(SystemSpec::from_yaml(text, "l40s", "l40s.yaml").is_ok());
        for bad in [
            "2: {latency_us: 5.5, bus_bw: 0}",
            "1: {latency_us: 5.5, bus_bw: 1e9}",
            "2: {latency_us: -1, bus_bw: 1e9}",
        ] {
            let t = text.replace("2: {latency_us: 5.5, bus_bw: 19000000000}", bad);
            let e = SystemSpec::from_yaml(&t, "l40s", "l40s.yaml").unwrap_err();
            assert!(e.to_string().contains("allreduce_tiers"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_yaml_is_an_error() {
        let e = SystemSpec::from_yaml("gpu: [1,2", "x", "x.yaml").unwrap_err();
        assert!(matches!(e, AicfgError::SystemFile { .. }));
    }
}
