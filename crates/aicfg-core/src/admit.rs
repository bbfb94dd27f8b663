//! What a request asks that the serving stack would refuse, and what it runs differently from
//! what the user may assume. One rule for both commands and the webapp: a combination the
//! framework refuses to start or serve is an error; one that runs, but not the way the flags
//! alone suggest, is a note in the report and the JSON.
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::hardware::{SystemSpec, Vendor};
use crate::model::ModelSpec;
use crate::serve::Workload;

/// TensorRT-LLM needs CUDA: it does not run on AMD GPUs.
pub fn check_backend(sys: &SystemSpec, backend: Backend) -> Result<()> {
    if sys.gpu.vendor == Vendor::Amd && backend == Backend::Trtllm {
        return Err(AicfgError::invalid(
            "backend",
            format!(
                "TensorRT-LLM runs on NVIDIA GPUs only and {} is an AMD GPU; use --backend vllm or --backend sglang (ROCm builds; in an experiment file, backend_name: vllm or sglang)",
                sys.name
            ),
        ));
    }
    Ok(())
}

/// Backends of `wanted` that run on every one of `systems` (for `--backend auto`).
pub fn backends_for(systems: &[&SystemSpec], wanted: &[Backend]) -> Vec<Backend> {
    wanted
        .iter()
        .copied()
        .filter(|&b| systems.iter().all(|s| check_backend(s, b).is_ok()))
        .collect()
}

/// Errors for what no framework serves; notes for what runs with a caveat.
pub fn check(
    model: &ModelSpec,
    systems: &[&SystemSpec],
    backends: &[Backend],
    w: &Workload,
) -> Result<Vec<String>> {
    for s in systems {
        for &b in backends {
            check_backend(s, b)?;
        }
    }
    if let Some(window) = model.context_window {
        let need = w.isl + w.osl;
        if need > window as f64 {
            return Err(AicfgError::invalid(
                "isl",
                format!(
                    "isl {} + osl {} = {} tokens exceeds {}'s context window of {window} tokens \
                     (max_position_embeddings / RoPE scaling of its config.json); give --isl and \
                     --osl (an experiment's isl and osl keys) that sum to at most {window}, or a \
                     config.json with rope_scaling for a longer window",
                    w.isl, w.osl, need, model.name
                ),
            ));
        }
    }
    let mut notes = Vec::new();
    if w.nextn > 0 && model.nextn_layers == 0 {
        notes.push(format!(
            "{} ships no MTP layers (num_nextn_predict_layers is 0): nextn {} is priced as \
             speculative decoding with free drafts; a separate draft model (e.g. EAGLE) adds its own time",
            model.name, w.nextn
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;
    use crate::model::ModelRegistry;

    fn w(isl: f64, osl: f64, nextn: u32) -> Workload {
        Workload {
            isl,
            osl,
            prefix: 0.0,
            nextn,
            nextn_accepted: 0.0,
        }
    }

    #[test]
    fn trtllm_is_refused_on_amd() {
        let r = SystemRegistry::builtin();
        let mi = r.get("mi300x").unwrap();
        let e = check_backend(mi, Backend::Trtllm).unwrap_err().to_string();
        assert!(
            e.contains("NVIDIA GPUs only")
                && e.contains("--backend vllm")
                && e.contains("backend_name: vllm"),
            "{e}"
        );
        assert!(check_backend(mi, Backend::Vllm).is_ok());
        assert_eq!(
            backends_for(&[mi], &Backend::ALL),
            vec![Backend::Vllm, Backend::Sglang]
        );
        let h = r.get("h200_sxm").unwrap();
        assert_eq!(backends_for(&[h], &Backend::ALL), Backend::ALL.to_vec());
    }

    #[test]
    fn context_window_and_mtp() {
        let m = ModelRegistry::builtin();
        let s = SystemRegistry::builtin();
        let h = s.get("h200_sxm").unwrap();
        let q = m.resolve("QWEN3_32B").unwrap();
        assert_eq!(q.context_window, Some(40960));
        assert!(check(&q, &[h], &[Backend::Trtllm], &w(40000.0, 960.0, 0)).is_ok());
        let e = check(&q, &[h], &[Backend::Trtllm], &w(40000.0, 961.0, 0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("40961 tokens exceeds") && e.contains("40960"),
            "{e}"
        );
        // Worded for both doors: the flags and an experiment file's keys.
        assert!(
            e.contains("give --isl and --osl (an experiment's isl and osl keys)"),
            "{e}"
        );
        let notes = check(&q, &[h], &[Backend::Trtllm], &w(4000.0, 100.0, 2)).unwrap();
        assert!(notes[0].contains("no MTP layers"), "{notes:?}");
        // DeepSeek-V3 ships one MTP layer; its YaRN window is 4096 x 40.
        let d = m.resolve("DEEPSEEK_V3").unwrap();
        assert_eq!(d.context_window, Some(163840));
        assert!(check(&d, &[h], &[Backend::Trtllm], &w(4000.0, 100.0, 1))
            .unwrap()
            .is_empty());
        // Llama 3.1: max_position_embeddings already holds the scaled window.
        let l = m.resolve("LLAMA3.1_8B").unwrap();
        assert_eq!(l.context_window, Some(131072));
    }
}
