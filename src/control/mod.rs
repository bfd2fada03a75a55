//! The control socket: `maglevc`'s line protocol, its grammar, the server
//! that answers it, and the CLI's output and shell.

pub mod drain;
pub mod format;
pub mod grammar;
pub mod handlers;
pub mod paths;
pub mod protocol;
pub mod server;
pub mod shell;
