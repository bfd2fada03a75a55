//! `maglevd`: the vpp-maglev daemon. Argument handling only; see the library.

use vpp_maglev::daemon::{self, options};

fn main() {
    let args = std::env::args().skip(1);
    let code = match options::parse(args, |k| std::env::var(k).ok()) {
        Ok(options::Command::Help) => {
            println!("{}", options::USAGE);
            0
        }
        Ok(options::Command::Version) => {
            println!(
                "maglevd {} (commit {})",
                vpp_maglev::VERSION,
                vpp_maglev::GIT_COMMIT
            );
            0
        }
        Ok(options::Command::Run(opts)) if opts.check => daemon::check(&opts.config),
        Ok(options::Command::Run(opts)) => daemon::run(opts),
        Err(msg) => {
            eprintln!("maglevd: {msg}\n\n{}", options::USAGE);
            options::EXIT_USAGE
        }
    };
    std::process::exit(code);
}
