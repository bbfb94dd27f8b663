//! What written deployment files do differently from what was predicted, said as notes (in the
//! report and JSON of `cli default` / `cli exp --save_dir`, and in the web page's download).
use aicfg_core::hardware::Vendor;
use aicfg_core::quant::GemmQuant;
use aicfg_core::search::{SearchRequest, SearchResult};

/// The notes for files generated from `result` of `req` with the `--generator-set` overrides
/// `sets`: a checkpoint of another format than the one priced, CUDA images on AMD GPUs.
pub fn file_notes(
    req: &SearchRequest,
    result: &SearchResult,
    sets: &[(String, String)],
) -> Vec<String> {
    checkpoint_note(sets, result)
        .into_iter()
        .chain(image_note(req, sets))
        .collect()
}

/// A note when `ServiceConfig.model_path` deploys a checkpoint whose weight format differs from
/// the one the prediction priced (e.g. `Qwen/Qwen3-32B-FP8` files for a bf16 `--model QWEN3_32B`).
fn checkpoint_note(sets: &[(String, String)], result: &SearchResult) -> Option<String> {
    let path = sets
        .iter()
        .rev()
        .find(|(k, _)| k == "ServiceConfig.model_path")
        .map(|(_, v)| v.as_str())?;
    let priced: Vec<GemmQuant> = result.quant.iter().map(|q| q.quant.gemm).collect();
    let deployed = aicfg_core::ModelRegistry::builtin()
        .resolve_builtin(path)
        .ok()
        .and_then(|m| m.quant.gemm)
        .map(|g| g.name().to_string())
        .or_else(|| {
            // Not a built-in: the usual names of quantized checkpoints.
            let l = path.to_ascii_lowercase();
            [
                "nvfp4", "fp4", "fp8", "awq", "gptq", "int4", "int8", "w4a16", "w8a8",
            ]
            .into_iter()
            .find(|t| l.contains(t))
            .map(String::from)
        })?;
    let matches = |g: &GemmQuant| {
        let n = g.name();
        n.starts_with(deployed.as_str())
            || deployed.starts_with(n)
            || (deployed.contains("fp4") && n.contains("fp4"))
    };
    if priced.iter().all(matches) {
        return None;
    }
    let names: Vec<&str> = priced.iter().map(|g| g.name()).collect();
    let mut names = names;
    names.dedup();
    Some(format!(
        "ServiceConfig.model_path={path} deploys {deployed} weights, but the prediction priced GEMM {}; \
         pass that checkpoint as --model (an experiment's model_name), or set --gemm-quant-mode \
         (gemm_quant_mode), so the numbers match the files",
        names.join("/")
    ))
}

/// A note when deployment files are written for AMD GPUs without an image override: the
/// manifests request AMD's GPU resource, but name the Dynamo runtime images, which are CUDA builds.
fn image_note(req: &SearchRequest, sets: &[(String, String)]) -> Option<String> {
    let amd: Vec<&str> = [&req.system, req.decode_sys()]
        .into_iter()
        .filter(|s| s.gpu.vendor == Vendor::Amd)
        .map(|s| s.name.as_str())
        .collect();
    if amd.is_empty() || sets.iter().any(|(k, _)| k == "K8sConfig.k8s_image") {
        return None;
    }
    Some(format!(
        "{} is an AMD GPU: the generated manifests request amd.com/gpu and select nodes by \
         amd.com/gpu.product-name (AMD's device plugin and node labeller), but name the Dynamo \
         runtime images, which are CUDA builds; pass --generator-set \
         K8sConfig.k8s_image=<a ROCm vLLM/SGLang image>",
        amd[0]
    ))
}
