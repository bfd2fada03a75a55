//! The BIRD side: the fragment's text (pure) and its atomic write.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

/// The fragment for `announced` addresses: one `define` line per family,
/// host prefixes sorted (IPv4 then IPv6 by value), an empty set as `[ ]`.
pub fn render(ipv4_set: &str, ipv6_set: &str, announced: &[IpAddr]) -> String {
    let mut v: Vec<IpAddr> = announced.to_vec();
    v.sort();
    v.dedup();
    let set = |want_v4: bool| {
        let items: Vec<String> = v
            .iter()
            .filter(|a| a.is_ipv4() == want_v4)
            .map(|a| format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 }))
            .collect();
        if items.is_empty() {
            "[ ]".to_string()
        } else {
            format!("[ {} ]", items.join(", "))
        }
    };
    format!(
        "# Written by maglevd: the VIPs this router can serve now. Do not edit.\n\
         define {ipv4_set} = {};\n\
         define {ipv6_set} = {};\n",
        set(true),
        set(false)
    )
}

/// What the file holds now, if it can be read.
pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Replaces `path` with `content` atomically: a temporary file in the same
/// directory, written and fsynced, renamed over it, the directory fsynced.
/// A reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        // BIRD runs as its own user: readable by all whatever the umask
        // (the file holds only the addresses announced to the world).
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn sets_are_sorted_one_line_each_and_empty_is_brackets() {
        let t = render(
            "MAGLEV_VIPS4",
            "MAGLEV_VIPS6",
            &ips(&["192.0.2.10", "2001:db8::1", "192.0.2.2", "192.0.2.2"]),
        );
        let lines: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "define MAGLEV_VIPS4 = [ 192.0.2.2/32, 192.0.2.10/32 ];",
                "define MAGLEV_VIPS6 = [ 2001:db8::1/128 ];",
            ]
        );
        let e = render("A", "B", &[]);
        assert!(e.ends_with("define A = [ ];\ndefine B = [ ];\n"), "{e}");
    }

    #[test]
    fn written_atomically_and_replaced() {
        let dir = std::env::temp_dir().join(format!("maglev-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("vips.conf");
        write_atomic(&f, "one\n").unwrap();
        write_atomic(&f, "two\n").unwrap();
        assert_eq!(read(&f).as_deref(), Some("two\n"));
        // Readable by BIRD's user even under the unit's UMask=0007.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        let missing = dir.join("no-such-dir").join("x.conf");
        assert!(write_atomic(&missing, "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
