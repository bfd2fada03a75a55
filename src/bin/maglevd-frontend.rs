//! `maglevd-frontend`: the live web dashboard for one or many maglevds
//! (see [`vpp_maglev::dashboard`] and maglevd-frontend(8)).

use std::process::ExitCode;

use vpp_maglev::cli;
use vpp_maglev::dashboard;

fn main() -> ExitCode {
    cli::default_sigpipe();
    match dashboard::parse_options(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Some(o)) => ExitCode::from(dashboard::run(o)),
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(cli::usage_error("maglevd-frontend", &e, dashboard::USAGE)),
    }
}
