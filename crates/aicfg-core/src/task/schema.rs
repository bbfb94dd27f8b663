//! Reading an experiment's YAML tree by hand: every key is checked against the schema (with the
//! closest known key suggested) and every value against its type, so errors name the key path.
use super::ExpError;
use serde_norway::{Mapping, Value};

/// Known keys of one experiment, top level.
pub const TOP_KEYS: &[&str] = &[
    "mode",
    "serving_mode",
    "model_name",
    "total_gpus",
    "system_name",
    "decode_system_name",
    "backend_name",
    "backend_version",
    "database_mode",
    "isl",
    "osl",
    "prefix",
    "ttft",
    "tpot",
    "enable_wide_ep",
    "gpu_cost_per_hour",
    "rank_by",
    "sla_percentile",
    "profiles",
    "config",
];
pub const CONFIG_AGG_KEYS: &[&str] = &[
    "nextn",
    "nextn_accept_rates",
    "worker_config",
    "advanced_tuning_config",
];
pub const CONFIG_DISAGG_KEYS: &[&str] = &[
    "nextn",
    "nextn_accept_rates",
    "prefill_worker_config",
    "decode_worker_config",
    "replica_config",
    "advanced_tuning_config",
];
pub const WORKER_KEYS: &[&str] = &[
    "gemm_quant_mode",
    "moe_quant_mode",
    "kvcache_quant_mode",
    "fmha_quant_mode",
    "comm_quant_mode",
    "num_gpu_per_worker",
    "tp_list",
    "pp_list",
    "dp_list",
    "moe_tp_list",
    "moe_ep_list",
];
pub const REPLICA_KEYS: &[&str] = &[
    "num_gpu_per_replica",
    "max_gpu_per_replica",
    "max_prefill_worker",
    "max_decode_worker",
];
pub const TUNING_AGG_KEYS: &[&str] = &[
    "prefill_latency_correction_scale",
    "decode_latency_correction_scale",
    "prefill_correction_scale",
    "decode_correction_scale",
    "decode_max_batch_size",
    "free_gpu_memory_fraction",
];
pub const TUNING_DISAGG_KEYS: &[&str] = &[
    "prefill_latency_correction_scale",
    "decode_latency_correction_scale",
    "prefill_correction_scale",
    "decode_correction_scale",
    "prefill_max_batch_size",
    "decode_max_batch_size",
    "free_gpu_memory_fraction",
];

pub use crate::suggest::{closest, edit_distance};

pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string \"{s}\""),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value !{}", t.tag),
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads typed values out of one mapping; errors carry the experiment and key path.
pub struct Reader<'a> {
    pub exp: &'a str,
    pub path: String,
    pub map: &'a Mapping,
}

impl<'a> Reader<'a> {
    pub fn new(exp: &'a str, path: &str, map: &'a Mapping) -> Self {
        Reader {
            exp,
            path: path.to_string(),
            map,
        }
    }

    pub fn err(&self, key: &str, msg: impl Into<String>) -> ExpError {
        ExpError::at(self.exp, &join(&self.path, key), msg)
    }

    fn type_err(&self, key: &str, want: &str, got: &Value) -> ExpError {
        self.err(key, format!("expected {want}, got {}", describe(got)))
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Every key must be a string in `known`; a key of the other serving mode says so.
    pub fn check_keys(&self, known: &[&str], other: &[&str], mode: &str) -> Result<(), ExpError> {
        for k in self.map.keys() {
            let Some(k) = k.as_str() else {
                return Err(ExpError::at(
                    self.exp,
                    &self.path,
                    format!("keys must be strings, got {}", describe(k)),
                ));
            };
            if known.contains(&k) {
                continue;
            }
            let msg = if other.contains(&k) {
                format!(
                    "key '{k}' does not apply to serving_mode {mode}; keys here: {}",
                    known.join(", ")
                )
            } else {
                match closest(k, known) {
                    Some(s) => format!("unknown key '{k}'; did you mean '{s}'?"),
                    None => format!("unknown key '{k}'; known keys: {}", known.join(", ")),
                }
            };
            return Err(self.err(k, msg));
        }
        Ok(())
    }

    pub fn mapping(&self, key: &str) -> Result<Option<&'a Mapping>, ExpError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Mapping(m)) => Ok(Some(m)),
            Some(v) => Err(self.type_err(key, "a mapping of keys", v)),
        }
    }

    pub fn child(&self, key: &str) -> Result<Option<Reader<'a>>, ExpError> {
        Ok(self
            .mapping(key)?
            .map(|m| Reader::new(self.exp, &join(&self.path, key), m)))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ExpError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Names like a version `0.20` read as numbers; take them as written.
            Some(Value::Number(n)) if key == "backend_version" => Ok(Some(n.to_string())),
            Some(v) => Err(self.type_err(key, "a string", v)),
        }
    }

    pub fn req_string(&self, key: &str) -> Result<String, ExpError> {
        self.string(key)?
            .ok_or_else(|| self.err(key, "required key is missing"))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ExpError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.type_err(key, "true or false", v)),
        }
    }

    fn uint_of(&self, key: &str, v: &Value, min: u64, max: u32) -> Result<u32, ExpError> {
        let n = match v {
            Value::Number(n) => n.as_u64(),
            _ => None,
        };
        match n {
            Some(n) if n >= min && n <= u64::from(max) => Ok(n as u32),
            Some(n) if n >= min => Err(self.err(key, format!("must be at most {max}, got {n}"))),
            Some(n) => Err(self.err(key, format!("must be at least {min}, got {n}"))),
            None => match v.as_i64() {
                Some(i) => Err(self.err(key, format!("must be at least {min}, got {i}"))),
                None => Err(self.type_err(key, "a whole number", v)),
            },
        }
    }

    pub fn uint(&self, key: &str, min: u64) -> Result<Option<u32>, ExpError> {
        self.uint_max(key, min, u32::MAX)
    }

    /// A whole number in `min..=max`.
    pub fn uint_max(&self, key: &str, min: u64, max: u32) -> Result<Option<u32>, ExpError> {
        self.get(key)
            .map(|v| self.uint_of(key, v, min, max))
            .transpose()
    }

    pub fn req_uint(&self, key: &str, min: u64) -> Result<u32, ExpError> {
        self.uint(key, min)?
            .ok_or_else(|| self.err(key, "required key is missing"))
    }

    /// A positive, finite number (integers accepted).
    pub fn positive(&self, key: &str) -> Result<Option<f64>, ExpError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                Some(x) => Err(self.err(key, format!("must be a positive number, got {x}"))),
                None => Err(self.type_err(key, "a number", v)),
            },
        }
    }

    fn list(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ExpError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Sequence(s)) => Ok(Some(s)),
            Some(v) => Err(self.type_err(key, "a list", v)),
        }
    }

    pub fn uint_list(&self, key: &str) -> Result<Option<Vec<u32>>, ExpError> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| self.uint_of(&format!("{key}[{i}]"), v, 1, crate::limits::MAX_PARALLEL))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn rate_list(&self, key: &str) -> Result<Option<Vec<f64>>, ExpError> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => out.push(x),
                Some(x) => return Err(self.err(&k, format!("must be between 0 and 1, got {x}"))),
                None => return Err(self.type_err(&k, "a number between 0 and 1", v)),
            }
        }
        Ok(Some(out))
    }

    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ExpError> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(self.type_err(&format!("{key}[{i}]"), "a string", v)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// Deep merge: mappings merge key by key, anything else (lists included) is replaced.
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Mapping(b), Value::Mapping(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if !v.is_null() => deep_merge(slot, v),
                    Some(_) => {}
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Replace: each section the user gives replaces the default section whole.
pub fn replace_sections(base: &mut Value, patch: &Value) {
    if let (Value::Mapping(b), Value::Mapping(p)) = (base, patch) {
        for (k, v) in p {
            if !v.is_null() {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("tp_lst", "tp_list"), 1);
        assert_eq!(closest("tp_lst", WORKER_KEYS), Some("tp_list"));
        assert_eq!(closest("enable_wideep", TOP_KEYS), Some("enable_wide_ep"));
        assert_eq!(closest("zzzzzzzz", TOP_KEYS), None);
    }

    #[test]
    fn merge_is_deep_and_lists_replace() {
        let mut base: Value = serde_norway::from_str("a: {x: 1, y: [1, 2]}\nb: 2").unwrap();
        let patch: Value = serde_norway::from_str("a: {y: [3]}").unwrap();
        let mut rep = base.clone();
        deep_merge(&mut base, &patch);
        assert_eq!(
            base,
            serde_norway::from_str::<Value>("a: {x: 1, y: [3]}\nb: 2").unwrap()
        );
        replace_sections(&mut rep, &patch);
        assert_eq!(
            rep,
            serde_norway::from_str::<Value>("a: {y: [3]}\nb: 2").unwrap()
        );
    }
}
