//! The YAML file as written: strict serde types, stage 1 of validation.
//!
//! Everything here rejects unknown keys and wrong types at parse time, so the
//! YAML parser can point at the offending line and column. Defaults and
//! cross-object rules are applied in stage 2 (`validate`), never here.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::duration::ConfDuration;
use super::model::{AnnounceMode, CheckType, HttpMethod, Protocol, StatusRange, TcpMode};

/// The document root: everything lives under `maglev:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub maglev: RawMaglev,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaglev {
    #[serde(default)]
    pub healthchecker: RawHealthChecker,
    #[serde(default)]
    pub vpp: RawVpp,
    #[serde(default)]
    pub healthchecks: NamedMap<RawHealthCheck>,
    #[serde(default)]
    pub backends: NamedMap<RawBackend>,
    #[serde(default)]
    pub frontends: NamedMap<RawFrontend>,
    pub announce: Option<RawAnnounce>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAnnounce {
    pub bird: Option<RawBird>,
    pub hold_down: Option<ConfDuration>,
    pub notify: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBird {
    pub file: Option<String>,
    pub ipv4_set: Option<String>,
    pub ipv6_set: Option<String>,
    pub reload: Option<Vec<String>>,
    pub reload_timeout: Option<ConfDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHealthChecker {
    pub transition_history: Option<u64>,
    pub netns: Option<String>,
    pub threads: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawVpp {
    pub api_socket: Option<String>,
    pub stats_socket: Option<String>,
    pub stats_interval: Option<ConfDuration>,
    #[serde(default)]
    pub lb: RawLb,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLb {
    pub ipv4_src_address: Option<IpAddr>,
    pub ipv6_src_address: Option<IpAddr>,
    pub sticky_buckets_per_core: Option<u64>,
    pub flow_timeout: Option<ConfDuration>,
    pub sync_interval: Option<ConfDuration>,
    pub startup_min_delay: Option<ConfDuration>,
    pub startup_max_delay: Option<ConfDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: CheckType,
    pub port: Option<u16>,
    pub interval: Option<ConfDuration>,
    pub fast_interval: Option<ConfDuration>,
    pub down_interval: Option<ConfDuration>,
    pub timeout: Option<ConfDuration>,
    pub rise: Option<u64>,
    pub fall: Option<u64>,
    pub probe_ipv4_src: Option<IpAddr>,
    pub probe_ipv6_src: Option<IpAddr>,
    pub params: Option<RawParams>,
}

/// Every parameter any check type knows; stage 2 rejects the ones that do not
/// belong to the check's type (so a typo is a parse error with a line, and a
/// misplaced key is a semantic error naming the type).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawParams {
    pub mode: Option<TcpMode>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub method: Option<HttpMethod>,
    pub expect_status: Option<StatusList>,
    pub expect_body: Option<String>,
    pub tls_server_name: Option<String>,
    pub tls_verify: Option<bool>,
    pub reuse_connection: Option<bool>,
    pub reuse_lifetime: Option<ConfDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub address: IpAddr,
    pub healthcheck: String,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFrontend {
    pub description: Option<String>,
    pub address: IpAddr,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub src_ip_sticky: Option<bool>,
    pub flush_on_down: Option<bool>,
    pub min_healthy: Option<Percent>,
    pub new_flows_table_length: Option<u64>,
    pub announce: Option<AnnounceMode>,
    pub pools: Vec<RawPool>,
}

/// `50%` or `50`.
#[derive(Debug, Clone, Copy)]
pub struct Percent(pub u64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a percentage like 50%")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Percent, E> {
                Ok(Percent(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Percent, E> {
                u64::try_from(n)
                    .map(Percent)
                    .map_err(|_| E::custom(format!("{n} is not a percentage like 50%")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Percent, E> {
                let t = s.trim();
                t.strip_suffix('%')
                    .unwrap_or(t)
                    .trim()
                    .parse::<u64>()
                    .map(Percent)
                    .map_err(|_| E::custom(format!("`{s}` is not a percentage like 50%")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPool {
    pub name: String,
    pub slow_start: Option<ConfDuration>,
    pub backends: NamedMap<Option<RawPoolBackend>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPoolBackend {
    pub weight: Option<u64>,
    pub slow_start: Option<ConfDuration>,
}

/// A YAML mapping keyed by operator-chosen names, in file order, duplicates kept.
///
/// Ordinary maps silently keep the last of two equal keys; an operator who
/// pasted `web1` twice deserves to hear about it, so stage 2 reports them.
#[derive(Debug)]
pub struct NamedMap<V>(pub Vec<(String, V)>);

impl<V> Default for NamedMap<V> {
    fn default() -> Self {
        NamedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for NamedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = NamedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(NamedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(NamedMap(out))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// `expect-status`: one code/range, or a list of them (`[200-299, 301]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList(pub Vec<StatusRange>);

fn parse_status_item(text: &str) -> Result<StatusRange, String> {
    let parse = |s: &str| -> Result<u16, String> {
        let v: u16 = s
            .trim()
            .parse()
            .map_err(|_| format!("invalid HTTP status {text:?} (write 200 or 200-299)"))?;
        if !(100..=599).contains(&v) {
            return Err(format!("HTTP status {v} is outside 100-599"));
        }
        Ok(v)
    };
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(text)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("HTTP status range {text:?} is backwards"));
    }
    Ok(StatusRange { lo, hi })
}

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl Visitor<'_> for ItemVisitor {
            type Value = StatusRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an HTTP status code or range such as 200 or 200-299")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusRange, E> {
                parse_status_item(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusRange, E> {
                parse_status_item(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusRange, E> {
                parse_status_item(v).map_err(E::custom)
            }
        }
        struct Item(StatusRange);
        impl<'de> Deserialize<'de> for Item {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ItemVisitor).map(Item)
            }
        }
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StatusList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of HTTP status codes or ranges such as [200-299, 301]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusList, E> {
                ItemVisitor.visit_u64(v).map(|r| StatusList(vec![r]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusList, E> {
                ItemVisitor.visit_i64(v).map(|r| StatusList(vec![r]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusList, E> {
                ItemVisitor.visit_str(v).map(|r| StatusList(vec![r]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusList, A::Error> {
                let mut out = Vec::new();
                while let Some(Item(r)) = seq.next_element()? {
                    out.push(r);
                }
                Ok(StatusList(out))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_items() {
        assert_eq!(
            parse_status_item("200-299"),
            Ok(StatusRange { lo: 200, hi: 299 })
        );
        assert_eq!(
            parse_status_item("301"),
            Ok(StatusRange { lo: 301, hi: 301 })
        );
        assert!(parse_status_item("99").unwrap_err().contains("outside"));
        assert!(
            parse_status_item("300-200")
                .unwrap_err()
                .contains("backwards")
        );
        assert!(parse_status_item("2xx").unwrap_err().contains("invalid"));
    }

    #[test]
    fn status_list_forms() {
        let one: StatusList = serde_yaml::from_str("204").unwrap();
        assert_eq!(one.0, vec![StatusRange { lo: 204, hi: 204 }]);
        let many: StatusList = serde_yaml::from_str("[200-299, 301]").unwrap();
        assert_eq!(
            many.0,
            vec![
                StatusRange { lo: 200, hi: 299 },
                StatusRange { lo: 301, hi: 301 }
            ]
        );
    }

    #[test]
    fn named_map_keeps_duplicates_in_order() {
        let m: NamedMap<u8> = serde_yaml::from_str("b: 1\na: 2\nb: 3\n").unwrap();
        assert_eq!(m.0, vec![("b".into(), 1), ("a".into(), 2), ("b".into(), 3)]);
    }
}
