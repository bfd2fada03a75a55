//! A program on a pseudo-terminal, its output as a stream of bytes.
#![allow(dead_code)]

use std::io::{BufReader, Read};
use std::process::{Child, Command, Stdio};

use crossbeam_channel::Receiver;

/// A child whose stdin, stdout and stderr are a pty.
pub struct Pty {
    pub child: Child,
    /// The terminal's side: write keys here.
    pub master: std::fs::File,
    /// Everything the child printed, byte by byte.
    pub output: Receiver<u8>,
}

impl Pty {
    /// Spawns `cmd` on a new pty of `size` (default: the kernel's).
    pub fn spawn(cmd: &mut Command, size: Option<nix::pty::Winsize>) -> Pty {
        let pty = nix::pty::openpty(size.as_ref(), None).unwrap();
        let io = |f: &std::os::fd::OwnedFd| Stdio::from(f.try_clone().unwrap());
        let child = cmd
            .stdin(io(&pty.slave))
            .stdout(io(&pty.slave))
            .stderr(io(&pty.slave))
            .spawn()
            .unwrap();
        drop(pty.slave);
        let master = std::fs::File::from(pty.master);
        let reader = master.try_clone().unwrap();
        let (tx, output) = crossbeam_channel::unbounded::<u8>();
        std::thread::spawn(move || {
            for b in BufReader::new(reader).bytes() {
                let Ok(b) = b else { break };
                if tx.send(b).is_err() {
                    break;
                }
            }
        });
        Pty {
            child,
            master,
            output,
        }
    }
}
