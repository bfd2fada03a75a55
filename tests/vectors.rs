//! `vpp::wire` against the golden vectors vpp_papi (the official binding)
//! produced: every entry of `../shared/vpp-reference/vectors.json` must
//! encode to its exact bytes and decode to its fields. Then the decoder is
//! fed truncations, mutations and random bytes: errors, never panics.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

use serde_json::Value as Json;
use vpp_maglev::vpp::wire::*;

fn vectors() -> Vec<Json> {
    // A copy of shared/vpp-reference/vectors.json (made by vpp_papi 2.4.2).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors.json");
    let text = std::fs::read_to_string(path).expect("tests/data/vectors.json");
    match serde_json::from_str(&text).expect("valid JSON") {
        Json::Array(a) => a,
        _ => panic!("vectors.json is not an array"),
    }
}

fn to_value(j: &Json) -> Value {
    match j {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Int(n.as_i64().expect("integer")),
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::List(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
        Json::Null => panic!("null in a vector"),
    }
}

/// Maps compare as sets of keys (papi's order and ours may differ).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| k == k2 && same(v, v2)))
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn without_id(v: Value) -> Value {
    match v {
        Value::Map(m) => Value::Map(m.into_iter().filter(|(k, _)| k != "_vl_msg_id").collect()),
        v => v,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check<M: Message + std::fmt::Debug + PartialEq>(v: &Json) {
    let note = v["note"].as_str().unwrap_or("");
    assert_eq!(v["name_crc"].as_str().unwrap(), M::name_crc(), "{note}");
    let fields = to_value(&v["fields"]);
    let m = M::from_fields(&fields).unwrap_or_else(|e| panic!("{}: {e}", M::NAME));
    let id = v["msg_id"].as_u64().unwrap() as u16;
    let bytes = m.encode(id);
    assert_eq!(
        hex(&bytes),
        v["hex"].as_str().unwrap(),
        "{}: encode ({note})",
        M::NAME
    );
    assert_eq!(bytes.len() as u64, v["size"].as_u64().unwrap());
    assert_eq!(
        hex(&frame(&bytes)),
        v["framed_hex"].as_str().unwrap(),
        "{}: framing",
        M::NAME
    );
    let golden = unhex(v["hex"].as_str().unwrap());
    let decoded = M::decode(&golden).unwrap_or_else(|e| panic!("{}: decode: {e}", M::NAME));
    assert_eq!(msg_id(&golden).unwrap(), id);
    let want = without_id(to_value(&v["decoded"]));
    assert!(
        same(&decoded.fields(), &want),
        "{}: decoded fields differ ({note})\n ours: {:?}\npapi: {:?}",
        M::NAME,
        decoded.fields(),
        want
    );
    assert_eq!(decoded, m, "{}: decode(encode(x)) != x", M::NAME);
}

/// Calls `$f::<T>(args)` for the message type named `$name`.
macro_rules! by_name {
    ($name:expr, $f:ident, $($arg:expr),*) => {
        by_name!(@ $name, $f, ($($arg),*),
            SockclntCreate, SockclntCreateReply, SockclntDelete, SockclntDeleteReply,
            ControlPing, ControlPingReply, MemclntKeepalive, MemclntKeepaliveReply,
            GetFirstMsgId, GetFirstMsgIdReply, CliInband, CliInbandReply, ShowVersion,
            ShowVersionReply, IpRouteLookup, IpRouteLookupReply, LbConf, LbConfReply,
            LbConfGet, LbConfGetReply, LbAddDelVip, LbAddDelVipReply, LbAddDelVipV2,
            LbAddDelVipV2Reply, LbAddDelAs, LbAddDelAsReply, LbAddDelAsV2, LbAddDelAsV2Reply,
            LbAsSetWeight, LbAsSetWeightReply, LbFlushVip, LbFlushVipReply, LbVipDump,
            LbVipDetails, LbAsDump, LbAsDetails, LbAsV2Dump, LbAsV2Details)
    };
    (@ $name:expr, $f:ident, $args:tt, $($t:ident),*) => {
        match $name {
            $(n if n == <$t as Message>::NAME => by_name!(@call $f, $t, $args),)*
            other => panic!("no message type for {other}"),
        }
    };
    (@call $f:ident, $t:ident, ($($arg:expr),*)) => { $f::<$t>($($arg),*) };
}

#[test]
fn every_golden_vector_encodes_and_decodes_exactly() {
    let vs = vectors();
    assert_eq!(vs.len(), 51, "vectors.json should hold 51 vectors");
    let mut seen = std::collections::BTreeSet::new();
    for v in &vs {
        let name = v["message"].as_str().unwrap();
        by_name!(name, check, v);
        seen.insert(name.to_string());
    }
    // Every message in MESSAGES that has a vector was exercised.
    assert!(
        seen.len() >= 35,
        "only {} message kinds covered",
        seen.len()
    );
}

fn decode_quietly<M: Message>(b: &[u8]) -> bool {
    M::decode(b).is_ok() | M::decode_lenient(b).is_ok()
}

fn all_decoders(b: &[u8]) {
    for (name, _) in MESSAGES {
        by_name!(*name, decode_quietly, b);
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn no_byte_sequence_makes_a_decoder_panic() {
    let vs = vectors();
    let seeds: Vec<Vec<u8>> = vs
        .iter()
        .map(|v| unhex(v["hex"].as_str().unwrap()))
        .collect();
    // Every truncation of every golden payload, for every decoder.
    for s in &seeds {
        for n in 0..s.len() {
            all_decoders(&s[..n]);
        }
    }
    // Mutations: flipped bytes, inflated counts and lengths.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut b = seeds[(rng.next() as usize) % seeds.len()].clone();
        for _ in 0..(1 + rng.next() % 4) {
            if b.is_empty() {
                break;
            }
            let i = (rng.next() as usize) % b.len();
            b[i] = match rng.next() % 3 {
                0 => 0xff,
                1 => 0,
                _ => rng.next() as u8,
            };
        }
        all_decoders(&b);
    }
    // Pure noise of every small length.
    for _ in 0..5_000 {
        let n = (rng.next() % 400) as usize;
        let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        all_decoders(&b);
    }
}

#[test]
fn frame_reader_survives_random_streams() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let mut fr = FrameReader::new();
        let n = (rng.next() % 200) as usize;
        let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        for chunk in b.chunks(1 + (rng.next() % 17) as usize) {
            fr.push(chunk);
            while let Ok(Some(p)) = fr.next_payload() {
                all_decoders(&p);
            }
        }
    }
}
