//! The two things maglevt asks of the C library: POSIX extended regular
//! expressions for `--filter` (as `grep -E` reads them; no regex crate
//! needed) and the host's fully qualified name (as `hostname -f` finds it).

use std::ffi::{CStr, CString};

use nix::libc;

/// A compiled POSIX extended regular expression.
pub struct Regex {
    re: Box<libc::regex_t>,
}

// SAFETY: a compiled regex_t is only read by regexec (glibc documents
// regexec as MT-safe with a shared compiled pattern).
unsafe impl Send for Regex {}
// SAFETY: as above.
unsafe impl Sync for Regex {}

impl Regex {
    /// Compiles `pattern`; the error is the C library's message.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let c = CString::new(pattern).map_err(|_| "the pattern contains a NUL byte".to_string())?;
        // SAFETY: regex_t is plain data; regcomp initialises it.
        let mut re: Box<libc::regex_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `re` and `c` are valid for the call.
        let rc =
            unsafe { libc::regcomp(&mut *re, c.as_ptr(), libc::REG_EXTENDED | libc::REG_NOSUB) };
        if rc != 0 {
            let mut buf = [0u8; 256];
            // SAFETY: regerror writes at most `buf.len()` bytes, NUL included.
            unsafe { libc::regerror(rc, &*re, buf.as_mut_ptr().cast(), buf.len()) };
            // SAFETY: regcomp may have allocated even on failure.
            unsafe { libc::regfree(&mut *re) };
            let msg = CStr::from_bytes_until_nul(&buf)
                .map(|m| m.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "invalid pattern".into());
            return Err(msg);
        }
        Ok(Regex { re })
    }

    /// Whether `text` contains a match (anchor with `^…$` for all of it).
    pub fn is_match(&self, text: &str) -> bool {
        let Ok(c) = CString::new(text) else {
            return false;
        };
        // SAFETY: a compiled pattern and a NUL-terminated string; no
        // match array with REG_NOSUB.
        unsafe { libc::regexec(&*self.re, c.as_ptr(), 0, std::ptr::null_mut(), 0) == 0 }
    }
}

impl Drop for Regex {
    fn drop(&mut self) {
        // SAFETY: compiled by regcomp, freed once.
        unsafe { libc::regfree(&mut *self.re) };
    }
}

/// The host's fully qualified name: its name, resolved to the canonical
/// name (the resolver's CNAME or `/etc/hosts` entry); the plain host name
/// when that fails.
pub fn fqdn() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let Ok(c) = CString::new(host.clone()) else {
        return host;
    };
    // SAFETY: addrinfo is plain data; zero is "no hints" but the flags.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid name and hints; `res` is freed below when set.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return host;
    }
    // SAFETY: getaddrinfo succeeded: `res` is a valid list whose first
    // entry carries the canonical name (or NULL).
    let name = unsafe {
        let cn = (*res).ai_canonname;
        let n = (!cn.is_null()).then(|| CStr::from_ptr(cn).to_string_lossy().into_owned());
        libc::freeaddrinfo(res);
        n
    };
    name.filter(|n| !n.is_empty()).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_regular_expressions() {
        let r = Regex::new("^(web|api)-[0-9]+$").unwrap();
        assert!(r.is_match("web-1"));
        assert!(r.is_match("api-22"));
        assert!(!r.is_match("web-x"));
        assert!(!r.is_match("xweb-1"));
        assert!(
            Regex::new("ns").unwrap().is_match("dns-v4"),
            "unanchored: contains"
        );
        assert!(Regex::new("(").is_err());
    }

    #[test]
    fn a_name_for_the_header() {
        assert!(!fqdn().is_empty());
    }
}
