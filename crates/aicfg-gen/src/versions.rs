//! The version matrix (Dynamo release → runtime image → framework versions, `data/versions.yaml`)
//! and the rules that depend on a framework or Dynamo version. Each rule names the release
//! where the behaviour changed, as read from the vendored schema snapshots (`schemas/`).
use crate::error::{GenError, Result};
use aicfg_core::Backend;
use serde::Deserialize;
use std::cmp::Ordering;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Release {
    pub dynamo: String,
    pub vllm: String,
    pub sglang: String,
    pub trtllm: String,
}

impl Release {
    pub fn framework(&self, b: Backend) -> &str {
        match b {
            Backend::Vllm => &self.vllm,
            Backend::Sglang => &self.sglang,
            Backend::Trtllm => &self.trtllm,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Images {
    trtllm: String,
    vllm: String,
    sglang: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Matrix {
    image_repository: String,
    images: Images,
    pub releases: Vec<Release>,
}

const MATRIX_YAML: &str = include_str!("../data/versions.yaml");

/// The embedded matrix (newest release first).
pub fn matrix() -> &'static Matrix {
    static M: OnceLock<Matrix> = OnceLock::new();
    M.get_or_init(|| serde_norway::from_str(MATRIX_YAML).expect("data/versions.yaml is valid"))
}

impl Matrix {
    /// Runtime image of a backend in a Dynamo release.
    pub fn image(&self, b: Backend, dynamo: &str) -> String {
        let name = match b {
            Backend::Trtllm => &self.images.trtllm,
            Backend::Vllm => &self.images.vllm,
            Backend::Sglang => &self.images.sglang,
        };
        format!("{}/{name}:{dynamo}", self.image_repository)
    }

    fn known(&self, b: Backend) -> String {
        let mut v: Vec<&str> = self.releases.iter().map(|r| r.framework(b)).collect();
        v.dedup();
        v.join(", ")
    }

    /// The release to write files for: `--dynamo-version` picks the release, else the newest
    /// release that ships `--generated_config_version`, else the newest release.
    pub fn resolve(
        &self,
        b: Backend,
        framework: Option<&str>,
        dynamo: Option<&str>,
    ) -> Result<&Release> {
        fn clean(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        let (framework, dynamo) = (clean(framework), clean(dynamo));
        let bad = |reason: String| GenError::Version(reason);
        let by_dynamo = match dynamo {
            Some(d) => Some(
                self.releases
                    .iter()
                    .find(|r| r.dynamo == d)
                    .ok_or_else(|| {
                        bad(format!(
                            "--dynamo-version {d} is not in the version matrix (known: {})",
                            self.releases
                                .iter()
                                .map(|r| r.dynamo.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?,
            ),
            None => None,
        };
        match (framework, by_dynamo) {
            (None, None) => Ok(&self.releases[0]),
            (None, Some(r)) => Ok(r),
            (Some(f), Some(r)) if r.framework(b) == f => Ok(r),
            (Some(f), Some(r)) => Err(bad(format!(
                "Dynamo {} ships {} {}, not {f}; drop one of --dynamo-version and --generated_config_version",
                r.dynamo,
                b.name(),
                r.framework(b)
            ))),
            (Some(f), None) => self.releases.iter().find(|r| r.framework(b) == f).ok_or_else(|| {
                bad(format!(
                    "--generated_config_version {f}: no Dynamo release in the version matrix ships {} {f} (known: {}); pick one of those or name the release with --dynamo-version",
                    b.name(),
                    self.known(b)
                ))
            }),
        }
    }
}

/// A PEP 440-style version reduced to what orders releases: numbers, then `rcN` (before the
/// final release), then `.postN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    nums: Vec<u32>,
    rc: Option<u32>,
    post: u32,
}

impl Version {
    pub fn parse(v: &str) -> Version {
        let mut nums = Vec::new();
        let mut rc = None;
        let mut post = 0;
        for part in v.trim().trim_start_matches('v').split('.') {
            if let Some(p) = part.strip_prefix("post") {
                post = p.parse().unwrap_or(0);
                continue;
            }
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            nums.push(digits.parse().unwrap_or(0));
            let rest = &part[digits.len()..];
            if let Some(r) = rest.strip_prefix("rc") {
                rc = Some(r.parse().unwrap_or(0));
            }
        }
        while nums.len() > 1 && nums.last() == Some(&0) {
            nums.pop();
        }
        Version { nums, rc, post }
    }

    /// `self >= other`.
    pub fn at_least(&self, other: &str) -> bool {
        self.cmp(&Version::parse(other)) != Ordering::Less
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        self.nums
            .cmp(&o.nums)
            .then_with(|| match (self.rc, o.rc) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
            .then(self.post.cmp(&o.post))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Version-dependent spellings, decided once per deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// SGLang: CUDA-graph batch sizes flag (`--cuda-graph-bs` was removed in 0.5.21;
    /// `--cuda-graph-bs-decode` exists since 0.5.13).
    pub sglang_cuda_graph_flag: &'static str,
    /// dynamo.vllm before 1.0 marks roles with `--is-prefill-worker` / `--is-decode-worker`
    /// instead of `--disaggregation-mode`.
    pub vllm_role_booleans: bool,
    /// dynamo.trtllm: `--publish-kv-events` (1.0 on); `--publish-events-and-metrics` before.
    pub trtllm_kv_events_flag: &'static str,
    /// TRT-LLM `moe_config.backend` for wide expert parallelism: `WIDEEP` up to 1.3.0rc26;
    /// from 1.3.0rc27 it is no longer an allowed value, so the key is left to TRT-LLM's own
    /// default (`None` = omit it).
    pub trtllm_wide_ep_backend: Option<&'static str>,
    /// DynamoGraphDeployment API version written: `nvidia.com/v1beta1` (components list,
    /// native pod template) from Dynamo 1.3.0, whose operator serves it and marks v1alpha1
    /// deprecated; `nvidia.com/v1alpha1` (services map, extraPodSpec) before.
    pub crd_api_version: &'static str,
}

pub fn rules(b: Backend, framework: &str, dynamo: &str) -> Rules {
    let f = Version::parse(framework);
    let d = Version::parse(dynamo);
    Rules {
        sglang_cuda_graph_flag: if b == Backend::Sglang && !f.at_least("0.5.13") {
            "--cuda-graph-bs"
        } else {
            "--cuda-graph-bs-decode"
        },
        vllm_role_booleans: !d.at_least("1.0.0"),
        trtllm_kv_events_flag: if d.at_least("1.0.0") {
            "--publish-kv-events"
        } else {
            "--publish-events-and-metrics"
        },
        trtllm_wide_ep_backend: if b == Backend::Trtllm && f.at_least("1.3.0rc27") {
            None
        } else {
            Some("WIDEEP")
        },
        crd_api_version: if d.at_least("1.3.0") {
            "nvidia.com/v1beta1"
        } else {
            "nvidia.com/v1alpha1"
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_like_pep440() {
        let v = |s| Version::parse(s);
        assert!(v("1.3.0rc27") > v("1.3.0rc5.post1"));
        assert!(v("1.3.0") > v("1.3.0rc29"));
        assert!(v("1.3.0.post1") > v("1.3.0"));
        assert!(v("0.5.10.post1") > v("0.5.9"));
        assert_eq!(v("1.0"), v("1.0.0"));
        assert!(v("0.5.21").at_least("0.5.21") && !v("0.5.16").at_least("0.5.21"));
    }

    #[test]
    fn matrix_is_newest_first_and_resolves() {
        let m = matrix();
        assert!(m
            .releases
            .windows(2)
            .all(|w| Version::parse(&w[0].dynamo) > Version::parse(&w[1].dynamo)));
        let r = m.resolve(Backend::Sglang, None, None).unwrap();
        assert_eq!(r.dynamo, m.releases[0].dynamo);
        let r = m.resolve(Backend::Vllm, Some("0.23.0"), None).unwrap();
        assert_eq!(r.dynamo, "1.3.1");
        let r = m
            .resolve(Backend::Trtllm, None, Some("1.3.0.post1"))
            .unwrap();
        assert_eq!(r.trtllm, "1.3.0rc19");
        assert!(m
            .resolve(Backend::Vllm, Some("0.11.0"), Some("1.6.1"))
            .is_err());
        let e = m
            .resolve(Backend::Trtllm, Some("0.20.0"), None)
            .unwrap_err();
        assert!(e.to_string().contains("1.3.0rc29"), "{e}");
        assert!(m.resolve(Backend::Trtllm, None, Some("9.9")).is_err());
        assert_eq!(
            m.image(Backend::Trtllm, "1.6.1"),
            "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.6.1"
        );
    }
}
