//! `--vpp-sim`: a simulated VPP inside maglevd, on a private socket, for
//! trying maglevd without VPP (the README's first step). Only in builds
//! with the `vpp-sim` feature (the default, and the Debian package); an
//! embedded build without it says so when asked for it.

#[cfg(feature = "vpp-sim")]
pub use with_sim::SimulatedVpp;
#[cfg(not(feature = "vpp-sim"))]
pub use without_sim::SimulatedVpp;

#[cfg(feature = "vpp-sim")]
mod with_sim {
    use std::path::{Path, PathBuf};

    use log::info;

    use crate::vpp::sim::{Sim, SimOptions};

    /// A running simulator and its private directory.
    pub struct SimulatedVpp {
        sim: Sim,
        _dir: RemoveOnDrop,
    }

    impl SimulatedVpp {
        /// Starts the simulator on a private socket (mode 0700 directory).
        pub fn start() -> std::io::Result<SimulatedVpp> {
            remove_stale_sim_dirs();
            let dir = sim_dir(std::process::id());
            std::fs::create_dir_all(&dir)?;
            // Whatever happens from here, the directory goes with us.
            let guard = RemoveOnDrop(dir.clone());
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            let mut opts = SimOptions::new(dir.join("api.sock"));
            opts.stats_socket = Some(dir.join("stats.sock"));
            let sim = Sim::start(opts)?;
            info!("vpp-sim-started api-socket={}", sim.api_socket().display());
            Ok(SimulatedVpp { sim, _dir: guard })
        }

        /// Its API socket.
        pub fn api_socket(&self) -> &Path {
            self.sim.api_socket()
        }

        /// Its stats socket.
        pub fn stats_socket(&self) -> Option<&Path> {
            self.sim.stats_socket()
        }

        /// Stops it and removes its directory.
        pub fn stop(mut self) {
            self.sim.stop();
        }
    }

    /// The private directory of `--vpp-sim`'s sockets for process `pid`.
    fn sim_dir(pid: u32) -> PathBuf {
        std::env::temp_dir().join(format!("maglevd-vppsim-{pid}"))
    }

    /// Removes the simulator directories of maglevds that are gone (killed,
    /// or failed to start) so they do not pile up in the temp directory.
    fn remove_stale_sim_dirs() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("maglevd-vppsim-"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            // Only ours (same owner), only if that process is gone.
            let mine = e.metadata().is_ok_and(|m| {
                std::os::unix::fs::MetadataExt::uid(&m) == nix::unistd::geteuid().as_raw()
            });
            if mine && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Removes a directory tree when dropped.
    struct RemoveOnDrop(PathBuf);

    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(not(feature = "vpp-sim"))]
mod without_sim {
    use std::path::Path;

    /// No simulator in this build.
    pub enum SimulatedVpp {}

    impl SimulatedVpp {
        /// Always an error: this build has no simulator.
        pub fn start() -> std::io::Result<SimulatedVpp> {
            Err(std::io::Error::other(
                "this maglevd was built without the VPP simulator (cargo feature vpp-sim)",
            ))
        }

        /// Never called.
        pub fn api_socket(&self) -> &Path {
            match *self {}
        }

        /// Never called.
        pub fn stats_socket(&self) -> Option<&Path> {
            match *self {}
        }

        /// Never called.
        pub fn stop(self) {
            match self {}
        }
    }
}
