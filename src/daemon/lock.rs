//! One maglevd per VPP: an exclusive `flock(2)` on a file named after the
//! VPP API socket, taken before anything else happens (before VPP is
//! touched, sockets are bound or probes start). Two daemons programming
//! the same VPP would undo each other's work; the second one must find
//! out before it sends a single message.
//!
//! The lock is the kernel's: it goes away with the process however it
//! ends (no stale lock after a crash). The file holds the holder's pid,
//! so the refusal can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl InstanceLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file for `api_socket` in `dir`: the socket's absolute path
/// (its directory resolved when it exists, so two spellings of one socket
/// share a lock), escaped into one file name.
pub fn lock_path(dir: &Path, api_socket: &Path) -> PathBuf {
    let abs = match (api_socket.parent(), api_socket.file_name()) {
        (Some(p), Some(f)) => std::fs::canonicalize(if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        })
        .map(|d| d.join(f))
        .unwrap_or_else(|_| api_socket.to_path_buf()),
        _ => api_socket.to_path_buf(),
    };
    let mut name = String::from("vpp-api");
    for c in abs.to_string_lossy().chars() {
        match c {
            '/' => name.push('-'),
            c if c.is_ascii_alphanumeric() || c == '.' || c == '_' => name.push(c),
            c => name.push_str(&format!("_{:x}", c as u32)),
        }
    }
    name.push_str(".lock");
    dir.join(name)
}

/// Takes the lock for `api_socket` in `dir` (created if missing), or says
/// who holds it.
pub fn acquire(dir: &Path, api_socket: &Path) -> Result<InstanceLock, String> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create lock directory {}: {e}", dir.display()))?;
    }
    let path = lock_path(dir, api_socket);
    let open = |write: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(&path)
    };
    // A lock file left by another user (root running maglevd by hand) can
    // still be locked read-only: flock needs no write access.
    let file = open(true)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => open(false),
            _ => Err(e),
        })
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            // The holder writes its pid just after locking: give it a
            // moment if the file is still empty.
            let mut held = String::new();
            for _ in 0..20 {
                held.clear();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut held);
                if !held.trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let pid = held
                .lines()
                .next()
                .filter(|p| !p.trim().is_empty())
                .unwrap_or("unknown");
            return Err(format!(
                "another maglevd (pid {}) already programs the VPP at {} (lock {})",
                pid.trim(),
                api_socket.display(),
                path.display()
            ));
        }
        Err((_, e)) => return Err(format!("cannot lock {}: {e}", path.display())),
    };
    // Ours now: record who we are for the next one to read.
    let _ = lock.set_len(0);
    let _ = lock.rewind();
    let _ = writeln!(lock, "{}\n{}", std::process::id(), api_socket.display());
    Ok(InstanceLock { _lock: lock, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = std::env::temp_dir().join(format!("maglev-lock-{}", std::process::id()));
        let sock = Path::new("/run/vpp/api.sock");
        let first = acquire(&dir, sock).expect("first");
        assert!(
            first.path().ends_with("vpp-api-run-vpp-api.sock.lock"),
            "{}",
            first.path().display()
        );
        let e = acquire(&dir, sock).unwrap_err();
        assert!(
            e.contains(&format!("pid {}", std::process::id())) && e.contains("/run/vpp/api.sock"),
            "{e}"
        );
        // Another VPP is another lock.
        let other = acquire(&dir, Path::new("/run/vpp2/api.sock")).expect("other VPP");
        drop(first);
        let again = acquire(&dir, sock).expect("released with the holder");
        drop((again, other));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn odd_characters_are_escaped_into_one_file_name() {
        let p = lock_path(Path::new("/x"), Path::new("/nonexistent dir/a:b.sock"));
        assert_eq!(p, Path::new("/x/vpp-api-nonexistent_20dir-a_3ab.sock.lock"));
    }
}
