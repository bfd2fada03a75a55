//! Everything that talks to or imitates VPP: the binary API codec
//! ([`wire`]), the blocking client ([`client`]), the Maglev table
//! ([`maglev`]) and the simulator ([`sim`]).

pub mod client;
pub mod errors;
pub mod maglev;
pub mod sim;
pub mod wire;
