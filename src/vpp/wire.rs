//! The VPP binary API codec: socket framing, the packed big-endian encodings
//! and typed structs for every message maglevd exchanges with VPP.
//!
//! Pure: no sockets here. The client, the simulator and the golden-vector
//! test all go through the same [`Message`] impls, so one layout table
//! (PROTOCOL.md §5–6) is written down exactly once. Decoding never panics:
//! every read is bounds-checked and a short buffer is a [`WireError`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes of the socket frame header (`msgbuf_t`) before every payload.
pub const HEADER_LEN: usize = 16;

/// Largest payload we accept. VPP's biggest message for us is the
/// handshake reply with its message table (~100 KiB); anything near this
/// bound is a corrupt length field, not a message.
pub const MAX_PAYLOAD: usize = 8 << 20;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The input ended before `what` was complete.
    Truncated {
        /// The field or message being read.
        what: &'static str,
        /// Bytes needed from the current position.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// More bytes than the message holds (strict decoding).
    Trailing {
        /// The message.
        what: &'static str,
        /// Bytes left over.
        extra: usize,
    },
    /// A frame announced a payload larger than [`MAX_PAYLOAD`] or of zero length.
    BadLength(usize),
    /// A value no encoding allows (an address family other than 0/1, ...).
    Invalid(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { what, need, have } => {
                write!(f, "truncated {what}: need {need} bytes, have {have}")
            }
            WireError::Trailing { what, extra } => {
                write!(f, "{extra} unexpected trailing bytes after {what}")
            }
            WireError::BadLength(n) => write!(f, "frame length {n} out of range"),
            WireError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for WireError {}

/// Result of a decode.
pub type WireResult<T> = Result<T, WireError>;

/// Wraps a payload in the 16-byte socket header (`q` = 0, BE length, 0).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    out
}

/// Reassembles frames from a byte stream: the kernel does not keep message
/// boundaries, and one read may hold half a frame or three of them.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// An empty reassembly buffer.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete payload, `Ok(None)` if more bytes are needed, or an
    /// error for a length no VPP sends (the stream cannot be trusted after it).
    pub fn next_payload(&mut self) -> WireResult<Option<Vec<u8>>> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[8], avail[9], avail[10], avail[11]]) as usize;
        if len == 0 || len > MAX_PAYLOAD {
            return Err(WireError::BadLength(len));
        }
        if avail.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = avail[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.start += HEADER_LEN + len;
        if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(payload))
    }

    /// Bytes held that do not yet form a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// The message id in the first two payload bytes.
pub fn msg_id(payload: &[u8]) -> WireResult<u16> {
    Reader::new(payload, "message id").u16()
}

/// A bounds-checked cursor over a payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf` on behalf of message `what` (named in errors).
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        let have = self.buf.len() - self.pos;
        if n > have {
            return Err(WireError::Truncated {
                what: self.what,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> WireResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> WireResult<u8> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> WireResult<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> WireResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(any(test, feature = "vpp-sim"))]
/// A decoded field value in the neutral shape vpp_papi prints, so the
/// golden vectors can be compared field by field and built from JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Any integer or enum.
    Int(i64),
    /// A `bool`.
    Bool(bool),
    /// Strings, addresses (`"10.0.0.1"`) and prefixes (`"192.0.2.1/32"`).
    Str(String),
    /// Arrays.
    List(Vec<Value>),
    /// Structs, fields in definition order.
    Map(Vec<(String, Value)>),
}

#[cfg(any(test, feature = "vpp-sim"))]
impl Value {
    /// The member `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

#[cfg(any(test, feature = "vpp-sim"))]
/// A field's wire name (`r#type` is `type`).
fn fname(ident: &'static str) -> &'static str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

#[cfg(any(test, feature = "vpp-sim"))]
fn field<'v>(m: &'v Value, key: &str) -> Result<&'v Value, String> {
    m.get(key).ok_or_else(|| format!("missing field {key}"))
}

/// A type with a fixed wire encoding inside a message.
pub trait Field: Sized {
    /// Appends the encoding.
    fn put(&self, out: &mut Vec<u8>);
    /// Reads one value.
    fn get(r: &mut Reader<'_>) -> WireResult<Self>;
    #[cfg(any(test, feature = "vpp-sim"))]
    /// The vpp_papi-shaped view.
    fn to_value(&self) -> Value;
    #[cfg(any(test, feature = "vpp-sim"))]
    /// Builds from the vpp_papi-shaped view.
    fn from_value(v: &Value) -> Result<Self, String>;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn get(r: &mut Reader<'_>) -> WireResult<Self> {
                const N: usize = std::mem::size_of::<$t>();
                Ok(<$t>::from_be_bytes(r.array::<N>()?))
            }
            #[cfg(any(test, feature = "vpp-sim"))]
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
            #[cfg(any(test, feature = "vpp-sim"))]
            fn from_value(v: &Value) -> Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| format!("{i} out of range")),
                    _ => Err(format!("expected an integer, got {v:?}")),
                }
            }
        }
    )*};
}

int_field!(u8, u16, u32, i32, u64);

impl Field for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(r.u8()? != 0)
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Int(i) => Ok(*i != 0),
            _ => Err(format!("expected a bool, got {v:?}")),
        }
    }
}

#[cfg(any(test, feature = "vpp-sim"))]
fn parse_str<T: std::str::FromStr>(v: &Value, what: &str) -> Result<T, String> {
    match v {
        Value::Str(s) => s.parse().map_err(|_| format!("bad {what} {s:?}")),
        _ => Err(format!("expected a {what} string, got {v:?}")),
    }
}

/// `ip4_address`: 4 raw bytes.
impl Field for Ipv4Addr {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.octets());
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(Ipv4Addr::from(r.array::<4>()?))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Str(self.to_string())
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        parse_str(v, "IPv4 address")
    }
}

/// `ip6_address`: 16 raw bytes.
impl Field for Ipv6Addr {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.octets());
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(Ipv6Addr::from(r.array::<16>()?))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Str(self.to_string())
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        parse_str(v, "IPv6 address")
    }
}

/// `vl_api_address_t`: `u8 af` then a 16-byte union (IPv4 in the first 4).
impl Field for IpAddr {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            IpAddr::V4(a) => {
                out.push(0);
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&[0; 12]);
            }
            IpAddr::V6(a) => {
                out.push(1);
                out.extend_from_slice(&a.octets());
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        let af = r.u8()?;
        let un = r.array::<16>()?;
        match af {
            0 => Ok(IpAddr::V4(Ipv4Addr::new(un[0], un[1], un[2], un[3]))),
            1 => Ok(IpAddr::V6(Ipv6Addr::from(un))),
            _ => Err(WireError::Invalid(format!("address family {af}"))),
        }
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Str(self.to_string())
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        parse_str(v, "IP address")
    }
}

/// `vl_api_prefix_t` / `address_with_prefix`: an address and a length.
/// Host bits are kept as given: VPP masks them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length in the address's own family (32 for an IPv4 host).
    pub len: u8,
}

impl Prefix {
    /// The host prefix (/32 or /128) of `addr`, as VIPs use.
    pub fn host(addr: IpAddr) -> Prefix {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    /// All-zero IPv4 /0: the "no filter" value of dump requests.
    pub fn any() -> Prefix {
        Prefix {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            len: 0,
        }
    }

    /// The same prefix with host bits cleared.
    pub fn normalized(&self) -> Prefix {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.len.min(32)))
                };
                IpAddr::V4(Ipv4Addr::from(bits & mask))
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.len.min(128)))
                };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        };
        Prefix {
            addr,
            len: self.len,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("no /len in {s:?}"))?;
        let addr: IpAddr = a.parse().map_err(|_| format!("bad address in {s:?}"))?;
        let len: u8 = l.parse().map_err(|_| format!("bad length in {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("length {len} too long in {s:?}"));
        }
        Ok(Prefix { addr, len })
    }
}

impl Field for Prefix {
    fn put(&self, out: &mut Vec<u8>) {
        self.addr.put(out);
        out.push(self.len);
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        let addr = IpAddr::get(r)?;
        let len = r.u8()?;
        Ok(Prefix { addr, len })
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Str(self.to_string())
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        parse_str(v, "prefix")
    }
}

/// `string name[N]`: NUL padded, at most N-1 bytes of text. Decoding stops
/// at the first NUL or the end of the field (VPP never writes the last
/// byte, which may hold garbage).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FixedStr<const N: usize>(pub String);

impl<const N: usize> Field for FixedStr<N> {
    fn put(&self, out: &mut Vec<u8>) {
        let b = self.0.as_bytes();
        let n = b.len().min(N - 1);
        out.extend_from_slice(&b[..n]);
        out.resize(out.len() + (N - n), 0);
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        let raw = r.take(N)?;
        let end = raw.iter().position(|&c| c == 0).unwrap_or(N);
        Ok(FixedStr(String::from_utf8_lossy(&raw[..end]).into_owned()))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Str(self.0.clone())
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Str(s) => Ok(FixedStr(s.clone())),
            _ => Err(format!("expected a string, got {v:?}")),
        }
    }
}

/// `vl_api_string_t`: u32 BE length, then the bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VarStr(pub String);

impl Field for VarStr {
    fn put(&self, out: &mut Vec<u8>) {
        (self.0.len() as u32).put(out);
        out.extend_from_slice(self.0.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        let n = r.u32()? as usize;
        let raw = r.take(n)?;
        Ok(VarStr(String::from_utf8_lossy(raw).into_owned()))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Str(self.0.clone())
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Str(s) => Ok(VarStr(s.clone())),
            _ => Err(format!("expected a string, got {v:?}")),
        }
    }
}

/// `lb_encap_type` (u32 on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Encap {
    /// GRE over IPv4 (IPv4 application servers).
    Gre4,
    /// GRE over IPv6 (IPv6 application servers).
    Gre6,
    /// Layer-3 direct server return (DSCP rewrite).
    L3dsr,
    /// NAT44 (Kubernetes service style).
    Nat4,
    /// NAT66.
    Nat6,
    /// A value this VPP version does not define.
    Other(u32),
}

impl Encap {
    /// The numeric value.
    pub fn code(self) -> u32 {
        match self {
            Encap::Gre4 => 0,
            Encap::Gre6 => 1,
            Encap::L3dsr => 2,
            Encap::Nat4 => 3,
            Encap::Nat6 => 4,
            Encap::Other(v) => v,
        }
    }

    /// From the numeric value.
    pub fn from_code(v: u32) -> Encap {
        match v {
            0 => Encap::Gre4,
            1 => Encap::Gre6,
            2 => Encap::L3dsr,
            3 => Encap::Nat4,
            4 => Encap::Nat6,
            v => Encap::Other(v),
        }
    }

    /// The encapsulation that carries traffic to an AS of this family.
    pub fn for_backend(addr: IpAddr) -> Encap {
        if addr.is_ipv4() {
            Encap::Gre4
        } else {
            Encap::Gre6
        }
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encap::Gre4 => f.write_str("gre4"),
            Encap::Gre6 => f.write_str("gre6"),
            Encap::L3dsr => f.write_str("l3dsr"),
            Encap::Nat4 => f.write_str("nat4"),
            Encap::Nat6 => f.write_str("nat6"),
            Encap::Other(v) => write!(f, "encap-{v}"),
        }
    }
}

impl Field for Encap {
    fn put(&self, out: &mut Vec<u8>) {
        self.code().put(out);
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(Encap::from_code(r.u32()?))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Int(i64::from(self.code()))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(Encap::from_code(u32::from_value(v)?))
    }
}

/// `prefix_matcher`: `u8 le, u8 ge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixMatcher {
    /// Less-or-equal length.
    pub le: u8,
    /// Greater-or-equal length.
    pub ge: u8,
}

/// `lb_vip`: the key of a VIP (prefix, protocol, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LbVip {
    /// The VIP prefix.
    pub pfx: Prefix,
    /// IP protocol; 255 = any (all-port VIP).
    pub protocol: u8,
    /// Port; 0 = all ports.
    pub port: u16,
}

/// Defines a struct of [`Field`]s whose encoding is its fields in order.
macro_rules! packed_struct {
    ($ty:ident { $($f:ident : $t:ty),* $(,)? }) => {
        impl Field for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                $(self.$f.put(out);)*
            }
            fn get(r: &mut Reader<'_>) -> WireResult<Self> {
                Ok($ty { $($f: <$t>::get(r)?),* })
            }
            #[cfg(any(test, feature = "vpp-sim"))]
            fn to_value(&self) -> Value {
                Value::Map(vec![$((fname(stringify!($f)).to_string(), self.$f.to_value())),*])
            }
            #[cfg(any(test, feature = "vpp-sim"))]
            fn from_value(v: &Value) -> Result<Self, String> {
                Ok($ty { $($f: <$t>::from_value(field(v, fname(stringify!($f)))?)
                    .map_err(|e| format!("{}: {e}", stringify!($f)))?),* })
            }
        }
    };
}

packed_struct!(PrefixMatcher { le: u8, ge: u8 });
packed_struct!(LbVip {
    pfx: Prefix,
    protocol: u8,
    port: u16
});

/// `fib_mpls_label` (7 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MplsLabel {
    /// Uniform mode.
    pub is_uniform: u8,
    /// The label.
    pub label: u32,
    /// TTL.
    pub ttl: u8,
    /// EXP bits.
    pub exp: u8,
}
packed_struct!(MplsLabel {
    is_uniform: u8,
    label: u32,
    ttl: u8,
    exp: u8
});

/// `address_union` on its own (16 bytes; papi shows both arms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressUnion(pub [u8; 16]);

impl Field for AddressUnion {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(AddressUnion(r.array()?))
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        let b = self.0;
        Value::Map(vec![
            (
                "ip4".into(),
                Value::Str(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
            ),
            ("ip6".into(), Value::Str(Ipv6Addr::from(b).to_string())),
        ])
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        if let Some(a) = v.get("ip6") {
            let a = Ipv6Addr::from_value(a)?;
            if !a.is_unspecified() {
                return Ok(AddressUnion(a.octets()));
            }
        }
        let mut b = [0u8; 16];
        if let Some(a) = v.get("ip4") {
            b[..4].copy_from_slice(&Ipv4Addr::from_value(a)?.octets());
        }
        Ok(AddressUnion(b))
    }
}

/// `fib_path_nh` (28 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibPathNh {
    /// Next-hop address.
    pub address: AddressUnion,
    /// Via MPLS label.
    pub via_label: u32,
    /// Object id.
    pub obj_id: u32,
    /// Classify table.
    pub classify_table_index: u32,
}
packed_struct!(FibPathNh {
    address: AddressUnion,
    via_label: u32,
    obj_id: u32,
    classify_table_index: u32,
});

/// `fib_path` (167 bytes). maglevd only needs to know a path exists; the
/// fields are decoded so replies can be checked and shown completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibPath {
    /// Interface, `u32::MAX` for none.
    pub sw_if_index: u32,
    /// Table.
    pub table_id: u32,
    /// RPF id.
    pub rpf_id: u32,
    /// Weight.
    pub weight: u8,
    /// Preference.
    pub preference: u8,
    /// `fib_path_type` (u32 enum).
    pub r#type: u32,
    /// `fib_path_flags` (u32 enum).
    pub flags: u32,
    /// `fib_path_nh_proto` (u32 enum).
    pub proto: u32,
    /// Next hop.
    pub nh: FibPathNh,
    /// Labels in use.
    pub n_labels: u8,
    /// Always 16 entries on the wire.
    pub label_stack: [MplsLabel; 16],
}

impl FibPath {
    /// The single exclusive path the lb plugin installs for a VIP.
    pub fn lb_exclusive(v6: bool) -> FibPath {
        FibPath {
            sw_if_index: u32::MAX,
            table_id: 0,
            rpf_id: 0,
            weight: 1,
            preference: 0,
            r#type: 0,
            flags: 0,
            proto: u32::from(v6),
            nh: FibPathNh {
                address: AddressUnion([0; 16]),
                via_label: 0,
                obj_id: 0,
                classify_table_index: 0,
            },
            n_labels: 0,
            label_stack: [MplsLabel::default(); 16],
        }
    }
}

impl Field for FibPath {
    fn put(&self, out: &mut Vec<u8>) {
        self.sw_if_index.put(out);
        self.table_id.put(out);
        self.rpf_id.put(out);
        self.weight.put(out);
        self.preference.put(out);
        self.r#type.put(out);
        self.flags.put(out);
        self.proto.put(out);
        self.nh.put(out);
        self.n_labels.put(out);
        for l in &self.label_stack {
            l.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        let mut p = FibPath {
            sw_if_index: u32::get(r)?,
            table_id: u32::get(r)?,
            rpf_id: u32::get(r)?,
            weight: u8::get(r)?,
            preference: u8::get(r)?,
            r#type: u32::get(r)?,
            flags: u32::get(r)?,
            proto: u32::get(r)?,
            nh: FibPathNh::get(r)?,
            n_labels: u8::get(r)?,
            label_stack: [MplsLabel::default(); 16],
        };
        for l in p.label_stack.iter_mut() {
            *l = MplsLabel::get(r)?;
        }
        Ok(p)
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Map(vec![
            ("sw_if_index".into(), self.sw_if_index.to_value()),
            ("table_id".into(), self.table_id.to_value()),
            ("rpf_id".into(), self.rpf_id.to_value()),
            ("weight".into(), self.weight.to_value()),
            ("preference".into(), self.preference.to_value()),
            ("type".into(), self.r#type.to_value()),
            ("flags".into(), self.flags.to_value()),
            ("proto".into(), self.proto.to_value()),
            ("nh".into(), self.nh.to_value()),
            ("n_labels".into(), self.n_labels.to_value()),
            (
                "label_stack".into(),
                Value::List(self.label_stack.iter().map(Field::to_value).collect()),
            ),
        ])
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        let mut p = FibPath {
            sw_if_index: u32::from_value(field(v, "sw_if_index")?)?,
            table_id: u32::from_value(field(v, "table_id")?)?,
            rpf_id: u32::from_value(field(v, "rpf_id")?)?,
            weight: u8::from_value(field(v, "weight")?)?,
            preference: u8::from_value(field(v, "preference")?)?,
            r#type: u32::from_value(field(v, "type")?)?,
            flags: u32::from_value(field(v, "flags")?)?,
            proto: u32::from_value(field(v, "proto")?)?,
            nh: FibPathNh::from_value(field(v, "nh")?)?,
            n_labels: u8::from_value(field(v, "n_labels")?)?,
            label_stack: [MplsLabel::default(); 16],
        };
        if let Some(Value::List(ls)) = v.get("label_stack") {
            for (slot, l) in p.label_stack.iter_mut().zip(ls) {
                *slot = MplsLabel::from_value(l)?;
            }
        }
        Ok(p)
    }
}

/// `ip_route`: a FIB entry with its paths (`n_paths` counts the VLA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRoute {
    /// Table id.
    pub table_id: u32,
    /// Index of the entry's load-balance object: the `/net/route/to` index.
    pub stats_index: u32,
    /// The matched prefix.
    pub prefix: Prefix,
    /// The paths.
    pub paths: Vec<FibPath>,
}

impl Field for IpRoute {
    fn put(&self, out: &mut Vec<u8>) {
        self.table_id.put(out);
        self.stats_index.put(out);
        self.prefix.put(out);
        (self.paths.len() as u8).put(out);
        for p in &self.paths {
            p.put(out);
        }
    }
    fn get(r: &mut Reader<'_>) -> WireResult<Self> {
        let table_id = u32::get(r)?;
        let stats_index = u32::get(r)?;
        let prefix = Prefix::get(r)?;
        let n = r.u8()?;
        let mut paths = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            paths.push(FibPath::get(r)?);
        }
        Ok(IpRoute {
            table_id,
            stats_index,
            prefix,
            paths,
        })
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn to_value(&self) -> Value {
        Value::Map(vec![
            ("table_id".into(), self.table_id.to_value()),
            ("stats_index".into(), self.stats_index.to_value()),
            ("prefix".into(), self.prefix.to_value()),
            ("n_paths".into(), Value::Int(self.paths.len() as i64)),
            (
                "paths".into(),
                Value::List(self.paths.iter().map(Field::to_value).collect()),
            ),
        ])
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_value(v: &Value) -> Result<Self, String> {
        let paths = match v.get("paths") {
            Some(Value::List(l)) => l
                .iter()
                .map(FibPath::from_value)
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(IpRoute {
            table_id: u32::from_value(field(v, "table_id")?)?,
            stats_index: u32::from_value(field(v, "stats_index")?)?,
            prefix: Prefix::from_value(field(v, "prefix")?)?,
            paths,
        })
    }
}

/// One `message_table` entry of the handshake reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The id to use.
    pub index: u16,
    /// `<name>_<crc>`.
    pub name: FixedStr<64>,
}
packed_struct!(TableEntry { index: u16, name: FixedStr<64> });

/// What a header field of a message kind holds.
pub enum Kind {
    /// `client_index` and `context` after the id.
    Request,
    /// `context` and `retval` after the id.
    Reply,
    /// `context` after the id.
    Details,
    /// Its own layout (the handshake messages).
    Special,
}

/// A VPP API message: its name, CRC and layout (after the 2-byte id).
pub trait Message: Sized {
    /// The message name, as in the .api file.
    const NAME: &'static str;
    /// The layout CRC of this VPP version.
    const CRC: u32;
    /// How the header fields are laid out.
    const KIND: Kind;
    /// Appends every field after the message id.
    fn put_body(&self, out: &mut Vec<u8>);
    /// Reads every field after the message id.
    fn get_body(r: &mut Reader<'_>) -> WireResult<Self>;
    #[cfg(any(test, feature = "vpp-sim"))]
    /// The vpp_papi-shaped view of the fields (without `_vl_msg_id`).
    fn fields(&self) -> Value;
    #[cfg(any(test, feature = "vpp-sim"))]
    /// Builds the message from the vpp_papi-shaped view.
    fn from_fields(v: &Value) -> Result<Self, String>;
    /// `context` of replies, details and requests.
    fn context(&self) -> u32;
    /// Sets `client_index` (requests only) and `context`.
    fn set_header(&mut self, client_index: u32, context: u32);
    /// `retval` of replies (`None` for other kinds).
    fn retval(&self) -> Option<i32> {
        None
    }

    /// The message-table key `<name>_<crc as 8 hex digits>`.
    fn name_crc() -> String {
        name_crc(Self::NAME, Self::CRC)
    }

    /// The payload: id then fields.
    fn encode(&self, id: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        id.put(&mut out);
        self.put_body(&mut out);
        out
    }

    /// Decodes a whole payload (id included), rejecting trailing bytes.
    fn decode(payload: &[u8]) -> WireResult<Self> {
        let mut r = Reader::new(payload, Self::NAME);
        r.u16()?;
        let m = Self::get_body(&mut r)?;
        if r.remaining() > 0 {
            return Err(WireError::Trailing {
                what: Self::NAME,
                extra: r.remaining(),
            });
        }
        Ok(m)
    }

    /// Decodes like VPP reads requests: trailing bytes are tolerated.
    fn decode_lenient(payload: &[u8]) -> WireResult<Self> {
        let mut r = Reader::new(payload, Self::NAME);
        r.u16()?;
        Self::get_body(&mut r)
    }
}

/// The message-table key for a name and CRC.
pub fn name_crc(name: &str, crc: u32) -> String {
    format!("{name}_{crc:08x}")
}

macro_rules! header_impl {
    (request) => {
        const KIND: Kind = Kind::Request;
        fn context(&self) -> u32 {
            self.context
        }
        fn set_header(&mut self, client_index: u32, context: u32) {
            self.client_index = client_index;
            self.context = context;
        }
    };
    (reply) => {
        const KIND: Kind = Kind::Reply;
        fn context(&self) -> u32 {
            self.context
        }
        fn set_header(&mut self, _client_index: u32, context: u32) {
            self.context = context;
        }
        fn retval(&self) -> Option<i32> {
            Some(self.retval)
        }
    };
    (details) => {
        const KIND: Kind = Kind::Details;
        fn context(&self) -> u32 {
            self.context
        }
        fn set_header(&mut self, _client_index: u32, context: u32) {
            self.context = context;
        }
    };
}

/// Defines message structs: `Type "name" crc kind { field: type, ... }`.
/// Field order is wire order; `client_index`/`context`/`retval` are
/// spelled out so the struct shows the whole layout.
macro_rules! messages {
    ($( $(#[$doc:meta])* $ty:ident $name:literal $crc:literal $kind:ident { $($f:ident : $t:ty),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            #[allow(missing_docs)]
            pub struct $ty { $(pub $f: $t),* }

            impl Message for $ty {
                const NAME: &'static str = $name;
                const CRC: u32 = $crc;
                header_impl!($kind);
                fn put_body(&self, out: &mut Vec<u8>) {
                    $(self.$f.put(out);)*
                }
                fn get_body(r: &mut Reader<'_>) -> WireResult<Self> {
                    Ok($ty { $($f: <$t>::get(r)?),* })
                }
                #[cfg(any(test, feature = "vpp-sim"))]
                fn fields(&self) -> Value {
                    Value::Map(vec![$((fname(stringify!($f)).to_string(), self.$f.to_value())),*])
                }
                #[cfg(any(test, feature = "vpp-sim"))]
                fn from_fields(v: &Value) -> Result<Self, String> {
                    Ok($ty { $($f: <$t>::from_value(field(v, fname(stringify!($f)))?)
                        .map_err(|e| format!("{}: {e}", stringify!($f)))?),* })
                }
            }
        )*

        /// Every message this module can encode, as (name, CRC).
        pub const MESSAGES: &[(&str, u32)] = &[
            ("sockclnt_create", 0x455fb9c4),
            ("sockclnt_create_reply", 0x35166268),
            $(($name, $crc)),*
        ];
    };
}

messages! {
    /// Ends the session (`index` = our handle).
    SockclntDelete "sockclnt_delete" 0x8ac76db6 request { client_index: u32, context: u32, index: u32 }
    /// `response` is 1 on success.
    SockclntDeleteReply "sockclnt_delete_reply" 0x8f38b1ee details { context: u32, response: i32 }
    /// Ends dumps; the cheapest liveness check.
    ControlPing "control_ping" 0x51077d14 request { client_index: u32, context: u32 }
    /// Carries VPP's pid.
    ControlPingReply "control_ping_reply" 0xf6b0b8ca reply { context: u32, retval: i32, client_index: u32, vpe_pid: u32 }
    /// VPP's keepalive (shared-memory clients only, answered if ever seen).
    MemclntKeepalive "memclnt_keepalive" 0x51077d14 request { client_index: u32, context: u32 }
    /// Answer to a keepalive.
    MemclntKeepaliveReply "memclnt_keepalive_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// First id of a module range (not needed with the table).
    GetFirstMsgId "get_first_msg_id" 0xebf79a66 request { client_index: u32, context: u32, name: FixedStr<64> }
    /// Its reply.
    GetFirstMsgIdReply "get_first_msg_id_reply" 0x7d337472 reply { context: u32, retval: i32, first_msg_id: u16 }
    /// Runs a CLI command.
    CliInband "cli_inband" 0xf8377302 request { client_index: u32, context: u32, cmd: VarStr }
    /// The command's output.
    CliInbandReply "cli_inband_reply" 0x05879051 reply { context: u32, retval: i32, reply: VarStr }
    /// Which VPP is this.
    ShowVersion "show_version" 0x51077d14 request { client_index: u32, context: u32 }
    /// VPP's version strings.
    ShowVersionReply "show_version_reply" 0xc919bde1 reply {
        context: u32, retval: i32, program: FixedStr<32>, version: FixedStr<32>,
        build_date: FixedStr<32>, build_directory: FixedStr<256>,
    }
    /// Finds a FIB entry (for its stats index).
    IpRouteLookup "ip_route_lookup" 0x710d6471 request { client_index: u32, context: u32, table_id: u32, exact: u8, prefix: Prefix }
    /// The entry.
    IpRouteLookupReply "ip_route_lookup_reply" 0x5d8febcb reply { context: u32, retval: i32, route: IpRoute }
    /// Global lb settings.
    LbConf "lb_conf" 0x56cd3261 request {
        client_index: u32, context: u32, ip4_src_address: Ipv4Addr, ip6_src_address: Ipv6Addr,
        sticky_buckets_per_core: u32, flow_timeout: u32,
    }
    /// Plain reply.
    LbConfReply "lb_conf_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// Reads the global lb settings.
    LbConfGet "lb_conf_get" 0x51077d14 request { client_index: u32, context: u32 }
    /// The global lb settings.
    LbConfGetReply "lb_conf_get_reply" 0x923427ac reply {
        context: u32, retval: i32, ip4_src_address: Ipv4Addr, ip6_src_address: Ipv6Addr,
        sticky_buckets_per_core: u32, flow_timeout: u32,
    }
    /// v1 VIP add/delete (no sticky flag).
    LbAddDelVip "lb_add_del_vip" 0x6fa569c7 request {
        client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16, encap: Encap,
        dscp: u8, r#type: u32, target_port: u16, node_port: u16, new_flows_table_length: u32, is_del: bool,
    }
    /// Plain reply.
    LbAddDelVipReply "lb_add_del_vip_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// VIP add/delete with `src_ip_sticky`.
    LbAddDelVipV2 "lb_add_del_vip_v2" 0x7c520e0f request {
        client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16, encap: Encap,
        dscp: u8, r#type: u32, target_port: u16, node_port: u16, new_flows_table_length: u32,
        src_ip_sticky: bool, is_del: bool,
    }
    /// Plain reply.
    LbAddDelVipV2Reply "lb_add_del_vip_v2_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// v1 AS add/delete (weight always 100).
    LbAddDelAs "lb_add_del_as" 0x35d72500 request {
        client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16, as_address: IpAddr,
        is_del: bool, is_flush: bool,
    }
    /// Plain reply.
    LbAddDelAsReply "lb_add_del_as_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// AS add/delete with a weight.
    LbAddDelAsV2 "lb_add_del_as_v2" 0x2f1d3b0e request {
        client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16, as_address: IpAddr,
        weight: u8, is_del: bool, is_flush: bool,
    }
    /// Plain reply.
    LbAddDelAsV2Reply "lb_add_del_as_v2_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// Changes an AS weight, optionally flushing its sticky flows.
    LbAsSetWeight "lb_as_set_weight" 0x2d89bdbd request {
        client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16, as_address: IpAddr,
        weight: u8, is_flush: bool,
    }
    /// Plain reply.
    LbAsSetWeightReply "lb_as_set_weight_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// Evicts a VIP's sticky entries (only for VIPs just seen in a dump).
    LbFlushVip "lb_flush_vip" 0x1063f819 request { client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16 }
    /// Plain reply (always 0).
    LbFlushVipReply "lb_flush_vip_reply" 0xe8d4e804 reply { context: u32, retval: i32 }
    /// Lists VIPs (VPP ignores the filter).
    LbVipDump "lb_vip_dump" 0x56110cb7 request {
        client_index: u32, context: u32, pfx: Prefix, pfx_matcher: PrefixMatcher, protocol: u8, port: u16,
    }
    /// One VIP.
    LbVipDetails "lb_vip_details" 0x1329ec9b details {
        context: u32, vip: LbVip, encap: Encap, dscp: u8, srv_type: u32, target_port: u16, flow_table_length: u16,
    }
    /// Lists ASes (v1).
    LbAsDump "lb_as_dump" 0x1063f819 request { client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16 }
    /// One AS (v1).
    LbAsDetails "lb_as_details" 0x8d24c29e details {
        context: u32, vip: LbVip, app_srv: IpAddr, flags: u8, in_use_since: u32,
    }
    /// Lists ASes with weights and bucket counts.
    LbAsV2Dump "lb_as_v2_dump" 0x1063f819 request { client_index: u32, context: u32, pfx: Prefix, protocol: u8, port: u16 }
    /// One AS with weight and buckets.
    LbAsV2Details "lb_as_v2_details" 0x90064aae details {
        context: u32, vip: LbVip, app_srv: IpAddr, flags: u8, in_use_since: u32, weight: u8, num_buckets: u32,
    }
}

/// Opens a session: no `client_index` (fixed id 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockclntCreate {
    /// Echoed in the reply.
    pub context: u32,
    /// Shown in `show api clients`.
    pub name: FixedStr<64>,
}

/// Fixed id of `sockclnt_create` in every VPP.
pub const SOCKCLNT_CREATE_ID: u16 = 15;
/// Fixed id of `sockclnt_create_reply` in every VPP.
pub const SOCKCLNT_CREATE_REPLY_ID: u16 = 16;

impl Message for SockclntCreate {
    const NAME: &'static str = "sockclnt_create";
    const CRC: u32 = 0x455fb9c4;
    const KIND: Kind = Kind::Special;
    fn put_body(&self, out: &mut Vec<u8>) {
        self.context.put(out);
        self.name.put(out);
    }
    fn get_body(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(SockclntCreate {
            context: u32::get(r)?,
            name: FixedStr::get(r)?,
        })
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn fields(&self) -> Value {
        Value::Map(vec![
            ("context".into(), self.context.to_value()),
            ("name".into(), self.name.to_value()),
        ])
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_fields(v: &Value) -> Result<Self, String> {
        Ok(SockclntCreate {
            context: u32::from_value(field(v, "context")?)?,
            name: FixedStr::from_value(field(v, "name")?)?,
        })
    }
    fn context(&self) -> u32 {
        self.context
    }
    fn set_header(&mut self, _client_index: u32, context: u32) {
        self.context = context;
    }
}

/// The handshake answer: our handle and the whole message table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockclntCreateReply {
    /// Always 0 in this VPP.
    pub client_index: u32,
    /// Echoed.
    pub context: u32,
    /// 0 = success.
    pub response: i32,
    /// Our handle: every later request's `client_index`.
    pub index: u32,
    /// `name_crc` → id for everything VPP knows.
    pub message_table: Vec<TableEntry>,
}

impl Message for SockclntCreateReply {
    const NAME: &'static str = "sockclnt_create_reply";
    const CRC: u32 = 0x35166268;
    const KIND: Kind = Kind::Special;
    fn put_body(&self, out: &mut Vec<u8>) {
        self.client_index.put(out);
        self.context.put(out);
        self.response.put(out);
        self.index.put(out);
        (self.message_table.len() as u16).put(out);
        for e in &self.message_table {
            e.put(out);
        }
    }
    fn get_body(r: &mut Reader<'_>) -> WireResult<Self> {
        let client_index = u32::get(r)?;
        let context = u32::get(r)?;
        let response = i32::get(r)?;
        let index = u32::get(r)?;
        let count = r.u16()?;
        // Check the whole table fits before allocating for it.
        let need = usize::from(count) * 66;
        if r.remaining() < need {
            return Err(WireError::Truncated {
                what: Self::NAME,
                need,
                have: r.remaining(),
            });
        }
        let mut message_table = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            message_table.push(TableEntry::get(r)?);
        }
        Ok(SockclntCreateReply {
            client_index,
            context,
            response,
            index,
            message_table,
        })
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn fields(&self) -> Value {
        Value::Map(vec![
            ("client_index".into(), self.client_index.to_value()),
            ("context".into(), self.context.to_value()),
            ("response".into(), self.response.to_value()),
            ("index".into(), self.index.to_value()),
            ("count".into(), Value::Int(self.message_table.len() as i64)),
            (
                "message_table".into(),
                Value::List(self.message_table.iter().map(Field::to_value).collect()),
            ),
        ])
    }
    #[cfg(any(test, feature = "vpp-sim"))]
    fn from_fields(v: &Value) -> Result<Self, String> {
        let message_table = match v.get("message_table") {
            Some(Value::List(l)) => l
                .iter()
                .map(TableEntry::from_value)
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(SockclntCreateReply {
            client_index: u32::from_value(field(v, "client_index")?)?,
            context: u32::from_value(field(v, "context")?)?,
            response: i32::from_value(field(v, "response")?)?,
            index: u32::from_value(field(v, "index")?)?,
            message_table,
        })
    }
    fn context(&self) -> u32 {
        self.context
    }
    fn set_header(&mut self, _client_index: u32, context: u32) {
        self.context = context;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_is_q_len_gc() {
        let f = frame(&[0, 23, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&f[..16], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0]);
    }

    #[test]
    fn reassembles_split_and_joined_frames() {
        let a = frame(&[0, 1, 2]);
        let b = frame(&[0, 3, 4, 5, 6]);
        let mut all = a.clone();
        all.extend_from_slice(&b);
        for cut in 0..all.len() {
            let mut fr = FrameReader::new();
            let mut got = Vec::new();
            fr.push(&all[..cut]);
            while let Some(p) = fr.next_payload().unwrap() {
                got.push(p);
            }
            fr.push(&all[cut..]);
            while let Some(p) = fr.next_payload().unwrap() {
                got.push(p);
            }
            assert_eq!(
                got,
                vec![vec![0, 1, 2], vec![0, 3, 4, 5, 6]],
                "cut at {cut}"
            );
            assert_eq!(fr.pending(), 0);
        }
    }

    #[test]
    fn rejects_zero_and_huge_lengths() {
        let mut fr = FrameReader::new();
        fr.push(&[0; 16]);
        assert_eq!(fr.next_payload(), Err(WireError::BadLength(0)));
        let mut fr = FrameReader::new();
        let mut h = vec![0; 8];
        h.extend_from_slice(&u32::MAX.to_be_bytes());
        h.extend_from_slice(&[0; 4]);
        fr.push(&h);
        assert!(matches!(fr.next_payload(), Err(WireError::BadLength(_))));
    }

    #[test]
    fn address_encodings() {
        let mut out = Vec::new();
        IpAddr::from([10, 0, 0, 1]).put(&mut out);
        assert_eq!(out.len(), 17);
        assert_eq!(&out[..5], &[0, 10, 0, 0, 1]);
        assert!(out[5..].iter().all(|&b| b == 0));
        let p: Prefix = "192.0.2.1/32".parse().unwrap();
        let mut out = Vec::new();
        p.put(&mut out);
        assert_eq!(out.len(), 18);
        assert_eq!(out[17], 32);
        let back = Prefix::get(&mut Reader::new(&out, "t")).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn bad_address_family_is_an_error() {
        let mut b = vec![7u8];
        b.extend_from_slice(&[0; 16]);
        assert!(matches!(
            IpAddr::get(&mut Reader::new(&b, "t")),
            Err(WireError::Invalid(_))
        ));
    }

    #[test]
    fn normalizes_host_bits() {
        let p: Prefix = "192.0.2.77/24".parse().unwrap();
        assert_eq!(p.normalized().to_string(), "192.0.2.0/24");
        let p: Prefix = "2001:db8::1/64".parse().unwrap();
        assert_eq!(p.normalized().to_string(), "2001:db8::/64");
        let p: Prefix = "10.1.2.3/0".parse().unwrap();
        assert_eq!(p.normalized().to_string(), "0.0.0.0/0");
    }

    #[test]
    fn fixed_string_stops_at_nul_and_tolerates_garbage_last_byte() {
        let mut raw = b"vpe".to_vec();
        raw.resize(31, 0);
        raw.push(0xff);
        let s = FixedStr::<32>::get(&mut Reader::new(&raw, "t")).unwrap();
        assert_eq!(s.0, "vpe");
        let long = FixedStr::<4>("abcdef".into());
        let mut out = Vec::new();
        long.put(&mut out);
        assert_eq!(out, b"abc\0");
    }

    #[test]
    fn strict_decode_rejects_trailing_and_short() {
        let m = ControlPing {
            client_index: 1,
            context: 2,
        };
        let mut p = m.encode(23);
        assert_eq!(ControlPing::decode(&p).unwrap(), m);
        p.push(0);
        assert!(matches!(
            ControlPing::decode(&p),
            Err(WireError::Trailing { .. })
        ));
        assert_eq!(ControlPing::decode_lenient(&p).unwrap(), m);
        for n in 0..p.len() - 1 {
            assert!(ControlPing::decode(&p[..n]).is_err());
        }
    }

    #[test]
    fn table_count_larger_than_payload_is_truncated_not_allocated() {
        let mut p = vec![0, 16];
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(
            SockclntCreateReply::decode(&p),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn name_crc_keeps_leading_zeros() {
        assert_eq!(CliInbandReply::name_crc(), "cli_inband_reply_05879051");
    }
}
