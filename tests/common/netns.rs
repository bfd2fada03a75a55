//! Network namespaces and veth links that tests create and always remove.
#![allow(dead_code)]

use std::process::Command;

/// Runs `ip` with `args`; panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("mgl-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &[&str]) {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(cmd);
        ip(&full);
    }

    /// Runs `f` on a new thread that lives inside this namespace.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> std::thread::JoinHandle<()> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f();
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Connects `a` and `b` with a veth pair named `<tag>a`/`<tag>b` (tag ≤ 10 chars).
pub fn veth(tag: &str, a: &Netns, b: &Netns) -> (String, String) {
    let (ia, ib) = (format!("{tag}a"), format!("{tag}b"));
    let _ = Command::new("ip").args(["link", "del", &ia]).output();
    ip(&["link", "add", &ia, "type", "veth", "peer", "name", &ib]);
    ip(&["link", "set", &ia, "netns", &a.name]);
    ip(&["link", "set", &ib, "netns", &b.name]);
    a.ip(&["link", "set", &ia, "up"]);
    b.ip(&["link", "set", &ib, "up"]);
    (ia, ib)
}
