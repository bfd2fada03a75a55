//! The control socket: `maglevc`'s line protocol, its grammar, the server
//! that answers it, and the CLI's output and shell.

pub(crate) mod drain;
pub mod format;
pub mod grammar;
pub(crate) mod handlers;
pub mod paths;
pub mod protocol;
pub(crate) mod server;
pub mod shell;
