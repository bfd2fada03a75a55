//! Errors of the VPP API client, and VPP's `retval` codes by name.

use std::fmt;

use super::wire::WireError;

/// `VNET_API_ERROR_*` names of the codes VPP returns to maglevd's messages
/// (PROTOCOL.md §8), plus the generic low ones.
const NAMES: &[(i32, &str)] = &[
    (-1, "UNSPECIFIED"),
    (-2, "INVALID_SW_IF_INDEX"),
    (-3, "NO_SUCH_FIB"),
    (-4, "NO_SUCH_INNER_FIB"),
    (-5, "NO_SUCH_LABEL"),
    (-6, "NO_SUCH_ENTRY"),
    (-7, "INVALID_VALUE"),
    (-70, "INVALID_MEMORY_SIZE"),
    (-73, "INVALID_ARGUMENT"),
    (-81, "VALUE_EXIST"),
    (-97, "INVALID_ADDRESS_FAMILY"),
];

/// The name of a `retval` (`VALUE_EXIST`), or `ERROR_<n>` if unknown.
pub fn api_error_name(retval: i32) -> String {
    NAMES
        .iter()
        .find(|(v, _)| *v == retval)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| format!("ERROR_{retval}"))
}

/// Everything that can go wrong talking to VPP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VppError {
    /// The socket failed (connect refused, no such file, ...).
    Io(String),
    /// No answer in time.
    Timeout(String),
    /// VPP closed the connection.
    Closed(String),
    /// Bytes that do not decode.
    Decode(WireError),
    /// VPP answered something out of protocol.
    Protocol(String),
    /// VPP lacks messages (or has other layouts) maglevd needs.
    Incompatible {
        /// `name_crc` keys not in VPP's table.
        missing: Vec<String>,
        /// Which VPP has them.
        needed: String,
    },
    /// VPP refused a request.
    Retval {
        /// The request.
        msg: &'static str,
        /// VPP's code.
        retval: i32,
    },
    /// A CLI command failed; `text` is VPP's error output.
    Cli {
        /// The command.
        cmd: String,
        /// VPP's code.
        retval: i32,
        /// What VPP printed.
        text: String,
    },
}

impl VppError {
    /// The `retval` of a refused request.
    pub fn retval(&self) -> Option<i32> {
        match self {
            VppError::Retval { retval, .. } | VppError::Cli { retval, .. } => Some(*retval),
            _ => None,
        }
    }

    /// Whether the session is unusable after this error (reconnect).
    pub fn is_connection_error(&self) -> bool {
        !matches!(self, VppError::Retval { .. } | VppError::Cli { .. })
    }
}

impl fmt::Display for VppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VppError::Io(m) | VppError::Timeout(m) | VppError::Closed(m) => f.write_str(m),
            VppError::Protocol(m) => write!(f, "protocol error: {m}"),
            VppError::Decode(e) => write!(f, "cannot decode VPP message: {e}"),
            VppError::Incompatible { missing, needed } => write!(
                f,
                "VPP lacks {} API message{} maglevd needs (absent or with another layout): {}; \
                 maglevd needs {needed}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
            VppError::Retval { msg, retval } => write!(
                f,
                "{msg} failed: VNET_API_ERROR_{} ({retval})",
                api_error_name(*retval)
            ),
            VppError::Cli { cmd, retval, text } => {
                write!(f, "VPP CLI {cmd:?} failed ({retval}): {text}")
            }
        }
    }
}

impl std::error::Error for VppError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_codes() {
        assert_eq!(api_error_name(-81), "VALUE_EXIST");
        assert_eq!(api_error_name(-6), "NO_SUCH_ENTRY");
        assert_eq!(api_error_name(-12345), "ERROR_-12345");
        let e = VppError::Retval {
            msg: "lb_add_del_vip_v2",
            retval: -81,
        };
        assert_eq!(
            e.to_string(),
            "lb_add_del_vip_v2 failed: VNET_API_ERROR_VALUE_EXIST (-81)"
        );
        assert!(!e.is_connection_error());
    }

    #[test]
    fn incompatible_names_every_missing_message() {
        let e = VppError::Incompatible {
            missing: vec![
                "lb_as_set_weight_2d89bdbd".into(),
                "lb_conf_get_51077d14".into(),
            ],
            needed: "VPP 26.10".into(),
        };
        let s = e.to_string();
        assert!(s.contains("lb_as_set_weight_2d89bdbd"));
        assert!(s.contains("lb_conf_get_51077d14"));
        assert!(s.contains("needs VPP 26.10"));
    }
}
