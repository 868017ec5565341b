//! sampler: a logwasm plugin built on logwasm_sdk. Keeps a deterministic share of lines by tier:
//! `vip` 100%, `pro` 10%, everything else 1% (all configurable).
//!
//! A line's tier: `"vip"` when the JSON object has `"vip": true`; otherwise the string value of
//! its tier field (default `x-user-tier`, looked up at the top level and under `headers`); lines
//! that are not JSON objects, or have no tier, use the default rate. Whether a line is kept
//! depends only on the value of its key field (default `user_id`; the whole line when the field
//! is missing), hashed with FNV-1a 64: the same user is kept or dropped in every replay, on every
//! host, by every worker.
//!
//! Options (all optional): `key` (field name), `tier_field` (field name), `rates` (table of tier
//! name to a fraction 0..1, the key `default` for lines of any other tier), merged over the
//! defaults `{vip = 1.0, pro = 0.1, default = 0.01}`.

use logwasm_sdk::{export_plugin, Output, Plugin};
use serde_json::{Map, Value};

/// Parts per million: rates are compared in integers so every platform agrees.
const SCALE: u64 = 1_000_000;

pub struct Sampler {
    key: String,
    tier_field: String,
    /// (tier, rate in parts per million)
    rates: Vec<(String, u64)>,
    default_rate: u64,
}

impl Plugin for Sampler {
    fn init(options: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(options).map_err(|e| format!("options are not JSON: {e}"))?;
        let table = value.as_object().ok_or("options must be a table")?;
        let mut sampler = Sampler {
            key: "user_id".into(),
            tier_field: "x-user-tier".into(),
            rates: vec![("vip".into(), SCALE), ("pro".into(), SCALE / 10)],
            default_rate: SCALE / 100,
        };
        for (name, value) in table {
            match name.as_str() {
                "key" => sampler.key = value.as_str().ok_or("options.key must be a string")?.into(),
                "tier_field" => sampler.tier_field = value.as_str().ok_or("options.tier_field must be a string")?.into(),
                "rates" => {
                    for (tier, rate) in value.as_object().ok_or("options.rates must be a table")? {
                        let rate = rate.as_f64().filter(|r| (0.0..=1.0).contains(r));
                        let ppm = (rate.ok_or(format!("options.rates.{tier} must be a number from 0 to 1"))? * SCALE as f64).round() as u64;
                        if tier == "default" {
                            sampler.default_rate = ppm;
                        } else if let Some(entry) = sampler.rates.iter_mut().find(|(t, _)| t == tier) {
                            entry.1 = ppm;
                        } else {
                            sampler.rates.push((tier.clone(), ppm));
                        }
                    }
                }
                other => return Err(format!("unknown option \"{other}\" (known: key, tier_field, rates)")),
            }
        }
        Ok(sampler)
    }

    fn process(&mut self, line: &[u8]) -> Output {
        let parsed: Option<Map<String, Value>> = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        let (rate, key_hash) = match &parsed {
            Some(map) => (self.rate_of(map), match map.get(&self.key) {
                Some(Value::String(s)) => fnv1a(s.as_bytes()),
                Some(other) => fnv1a(other.to_string().as_bytes()),
                None => fnv1a(line),
            }),
            None => (self.default_rate, fnv1a(line)),
        };
        if key_hash % SCALE < rate {
            Output::Keep
        } else {
            Output::Drop
        }
    }
}

impl Sampler {
    fn rate_of(&self, map: &Map<String, Value>) -> u64 {
        if map.get("vip") == Some(&Value::Bool(true)) {
            return self.rate_for("vip");
        }
        let tier = map
            .get(&self.tier_field)
            .or_else(|| map.get("headers").and_then(|h| h.get(&self.tier_field)))
            .and_then(Value::as_str);
        match tier {
            Some(tier) => self.rate_for(&tier.to_ascii_lowercase()),
            None => self.default_rate,
        }
    }

    fn rate_for(&self, tier: &str) -> u64 {
        self.rates.iter().find(|(t, _)| t == tier).map(|(_, r)| *r).unwrap_or(self.default_rate)
    }
}

export_plugin!(Sampler);

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
