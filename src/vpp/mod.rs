//! Everything that talks to or imitates VPP: the binary API codec
//! ([`wire`]), the blocking client ([`client`]), the Maglev table
//! ([`maglev`]), desired state and diffing ([`lb`]), the thread that
//! applies it ([`reconciler`]) and the simulator ([`sim`]).

pub mod client;
pub mod errors;
pub mod lb;
pub mod maglev;
pub mod preview;
pub mod reconciler;
pub mod scraper;
#[cfg(feature = "vpp-sim")]
pub mod sim;
pub mod stats;
pub(crate) mod status;
pub mod wire;
