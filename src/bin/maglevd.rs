//! `maglevd`: the vpp-maglev daemon. Argument handling only; see the library.

use vpp_maglev::cli;
use vpp_maglev::daemon::{self, options};

fn main() {
    let args = std::env::args().skip(1);
    let code = match options::parse(args, |k| std::env::var(k).ok()) {
        Ok(options::Command::Help) => {
            println!("{}", options::USAGE);
            0
        }
        Ok(options::Command::Version) => {
            println!("{}", cli::version_line("maglevd"));
            0
        }
        Ok(options::Command::Run(opts)) if opts.check => daemon::check(&opts.config),
        Ok(options::Command::Run(opts)) if opts.withdraw => daemon::withdraw(&opts.config),
        Ok(options::Command::Run(opts)) => daemon::run(opts),
        Err(msg) => cli::usage_error("maglevd", &msg, options::USAGE).into(),
    };
    std::process::exit(code);
}
