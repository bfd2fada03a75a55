//! Where the control socket lives, for maglevd and maglevc alike: the
//! system path, or, for an ordinary user who cannot write there (the
//! README's quick start without root), the user's runtime directory.

use std::path::{Path, PathBuf};

/// The system control socket (the packaged unit's `RuntimeDirectory`).
pub const DEFAULT_SOCKET: &str = "/run/vpp-maglev/maglevd.sock";

/// The places a control socket may be, in order: the system one, then
/// `$XDG_RUNTIME_DIR/vpp-maglev/maglevd.sock` when that variable is set.
pub fn candidates() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        v.push(Path::new(&dir).join("vpp-maglev").join("maglevd.sock"));
    }
    v
}

/// Whether this process can create a socket in `dir` (or create `dir`).
fn usable_dir(dir: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    let writable = |d: &Path| access(d, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
    if dir.is_dir() {
        return writable(dir);
    }
    dir.parent().is_some_and(|p| p.is_dir() && writable(p))
}

/// The socket maglevd binds when none was given: the first candidate
/// whose directory it can write (the system one for root and the
/// packaged unit).
pub fn for_daemon() -> PathBuf {
    let c = candidates();
    c.iter()
        .find(|p| p.parent().is_some_and(usable_dir))
        .cloned()
        .unwrap_or_else(|| c[0].clone())
}

/// The socket maglevc talks to when none was given: the first candidate
/// that exists, in the same order as maglevd's.
pub fn for_client() -> PathBuf {
    let c = candidates();
    c.iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| c[0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_path_comes_first() {
        assert_eq!(candidates()[0], Path::new(DEFAULT_SOCKET));
        assert!(usable_dir(&std::env::temp_dir()));
        assert!(!usable_dir(Path::new("/nonexistent/deeper")));
    }
}
